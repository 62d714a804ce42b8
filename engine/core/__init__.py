"""The light core both halves import (no torch): the registry mechanism, the config schema and the
run config, the protocol, capabilities, the family and solver registries, log keys, file utilities."""
