"""marshmallow schemas, one module per area; names say their purpose (UserCreate, UserPublic)."""
