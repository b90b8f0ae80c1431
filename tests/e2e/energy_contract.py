"""The energy contract every run JSON meets (issue 16): ``energy`` with client, server and network
joules that add up to ``total_joules`` exactly, ``co2e_grams`` and ``energy_source``."""


def assert_energy_contract(d: dict) -> None:
    e = d["energy"]
    assert {"client_joules", "server_joules", "network_joules", "total_joules"} <= set(e)
    assert e["client_joules"] + e["server_joules"] + e["network_joules"] == e["total_joules"]
    assert e["client_joules"] > 0 and e["network_joules"] > 0 and e["server_joules"] > 0
    assert d["co2e_grams"] > 0 and d["energy_source"] in ("measured", "estimated")
    assert e["host_joules"] > 0  # codecarbon read this machine (by counters or by its estimate)
