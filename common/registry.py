"""Driver registries: one map per kind of platform part (hypervisor, network, firewall, image
store, host facts), from a name the config gives to the class that implements it.

Modelled on Ganeti's `_HYPERVISOR_MAP` and Incus' storage driver loader: the map is explicit (no
plugin discovery), a driver module is imported only when chosen (a FreeBSD driver never imports
pyroute2, a Linux host never imports the pf renderer), and an unknown name is a configuration
error that lists the choices. Each daemon declares its registry in its `drivers/__init__.py`.
"""

import importlib
from collections.abc import Mapping
from typing import Generic, TypeVar

from common.config import Config
from common.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one kind of driver -> "package.module:Class" (imported on first use)."""

    def __init__(self, kind: str, option: str, drivers: Mapping[str, str]) -> None:
        self.kind = kind
        self.option = option  # the config key that chooses (named in errors)
        self._drivers = dict(drivers)

    def names(self) -> list[str]:
        return sorted(self._drivers)

    def register(self, name: str, target: str) -> None:
        """Add a driver (tests add fakes this way; production drivers are in the map)."""
        self._drivers[name] = target

    def driver_class(self, name: str) -> type[T]:
        target = self._drivers.get(name)
        if target is None:
            raise ConfigError(
                f"{self.option}: unknown {self.kind} driver {name!r}"
                f" (choices: {', '.join(self.names())})"
            )
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def load(self, name: str, config: Config) -> T:
        """The named driver, built by its `from_config(config)` (every driver class has one)."""
        return self.driver_class(name).from_config(config)  # type: ignore[attr-defined]
