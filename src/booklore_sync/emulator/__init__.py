"""The BookLore emulator: a real HTTP server that speaks BookLore's API as
``booklore-api.md`` describes it (fork, booklore/upstream, grimmory and older BookLore
releases), with a control API and fault hooks for tests.  See ``docs/emulator.md``.

    from booklore_sync.emulator import start_emulator
    with start_emulator(mode="fork", port=0) as emu:
        emu.base_url, emu.state.sessions(), emu.state.inject_fault(...)
"""

from typing import Any

from .server import Emulator, start_emulator
from .state import State

__all__ = ["Emulator", "State", "start_emulator", "run_emulator_cli"]


def run_emulator_cli(*args: Any, **kwargs: Any) -> int:
    """See ``booklore_sync.emulator.cli.run_emulator_cli``."""
    from .cli import run_emulator_cli as _run

    return _run(*args, **kwargs)
