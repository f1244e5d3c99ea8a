"""What every command shares: where the controller is and how to call it."""

from __future__ import annotations

from dataclasses import dataclass, field

from voe.cli.client import Client, resolve


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    data_dir: str | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(resolve(self.url, self.token, self.data_dir))
        return self._client
