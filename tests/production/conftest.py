from tests.store.databases import postgres_admin_url

__all__ = ["postgres_admin_url"]
