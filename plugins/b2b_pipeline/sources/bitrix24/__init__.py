"""Bitrix24 (REST, inbound webhook): the connector (`connector.bitrix24_source`) and a local fake of
a portal seeded from a file drop (`fake.FakeBitrix24`)."""
