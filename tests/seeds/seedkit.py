"""Helpers of the seed-compatibility tests: a served API's address and keys."""

from dataclasses import dataclass

#: (key name, tenant, admin)
KEYS = (("a", "tenant-a", False), ("b", "tenant-b", False), ("admin", "ops", True))


@dataclass
class Served:
    """A running ``jobtrack serve``: its base URL and raw keys by name."""

    url: str
    keys: dict[str, str]

    def auth(self, who: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
