"""HTTP plumbing shared by every module's router: problem+json errors, auth, OpenAPI helpers."""
