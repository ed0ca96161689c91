"""Files the server keeps for tenants, under `<data_dir>/tenants/<tenant id>/<group id>/`."""
