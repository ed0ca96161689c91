"""The platform API, on the bare base domain: sign-in and tenant management."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from steward.server.accounts.schemas import TokenResponse
from steward.server.deps import RuntimeDep, SystemSessionDep, client_address
from steward.server.platform.deps import PlatformAdminDep, PlatformHost
from steward.server.platform.service import create_tenant_with_admin, platform_sign_in
from steward.server.tenancy import service as tenancy
from steward.server.tenancy.hosts import announce_tenant_change

router = APIRouter(prefix="/api/v1/platform", tags=["platform"])

SlugPath = Annotated[str, Path(min_length=1, max_length=63)]


class PlatformLogin(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str
    status: str
    devices: int
    online: int


class TenantCreate(BaseModel):
    slug: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=200)
    admin_email: str = Field(min_length=3, max_length=254)
    admin_password: str = Field(min_length=1, max_length=1024)
    locale: Literal["en", "ko"] = "en"
    timezone: str = Field(default="UTC", max_length=64)


class TenantStatusChange(BaseModel):
    status: Literal["active", "disabled"]


def _out(summary: tenancy.TenantSummary) -> TenantOut:
    t = summary.tenant
    return TenantOut(
        id=str(t.id),
        slug=t.slug,
        name=t.name,
        status=t.status,
        devices=summary.devices,
        online=summary.online,
    )


@router.post("/login", response_model=TokenResponse)
async def platform_login(
    body: PlatformLogin,
    request: Request,
    _host: PlatformHost,
    runtime: RuntimeDep,
    session: SystemSessionDep,
) -> TokenResponse:
    token = await platform_sign_in(
        session,
        runtime.login_throttle,
        runtime.settings,
        address=client_address(request),
        email=body.email,
        password=body.password,
    )
    ttl = runtime.settings.access_token_ttl_s
    return TokenResponse(access_token=token, expires_in=ttl)


@router.get("/tenants", response_model=list[TenantOut])
async def list_tenants(_admin: PlatformAdminDep, session: SystemSessionDep) -> list[TenantOut]:
    return [_out(s) for s in await tenancy.list_tenants(session)]


@router.post("/tenants", response_model=TenantOut, status_code=201)
async def create_tenant(
    body: TenantCreate, _admin: PlatformAdminDep, runtime: RuntimeDep, session: SystemSessionDep
) -> TenantOut:
    tenant = await create_tenant_with_admin(
        session,
        body.slug,
        body.name,
        body.admin_email,
        body.admin_password,
        locale=body.locale,
        timezone=body.timezone,
    )
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    return _out(tenancy.TenantSummary(tenant, 0, 0))


@router.patch("/tenants/{slug}", response_model=TenantOut)
async def change_tenant_status(
    slug: SlugPath,
    body: TenantStatusChange,
    _admin: PlatformAdminDep,
    runtime: RuntimeDep,
    session: SystemSessionDep,
) -> TenantOut:
    tenant = await tenancy.set_tenant_status(session, slug, body.status)
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    return _out(await tenancy.describe_tenant(session, tenant.slug))
