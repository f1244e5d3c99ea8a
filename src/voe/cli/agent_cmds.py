"""``voe agent install --root DIR``: put the agent into a persona image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voe.agent.install import install_into

app = typer.Typer(help="The agent that runs inside personas.", no_args_is_help=True)


@app.command()
def install(root: Annotated[Path, typer.Option(help="the image's root directory")]):
    """Install the agent and its enabled systemd unit into an image root."""
    for p in install_into(root):
        typer.echo(f"installed {p}")
