"""What every command shares: where the controller is and how to call it."""

from __future__ import annotations

from dataclasses import dataclass, field

from voe.cli.client import Client, resolve


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    data_dir: str | None = None
    ca: str | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(resolve(self.url, self.token, self.data_dir, self.ca))
        return self._client

    def close(self) -> None:
        """Close the connection to the controller, as TLS asks (a server
        stopping waits for its clients' goodbyes)."""
        if self._client is not None:
            self._client.close()
            self._client = None
