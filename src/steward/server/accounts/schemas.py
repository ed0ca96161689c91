from __future__ import annotations

from pydantic import BaseModel, Field


class LoginRequest(BaseModel):
    # The tenant is the one of the host the request came to; when given, it must be that one.
    tenant: str | None = Field(default=None, min_length=1, max_length=63)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
