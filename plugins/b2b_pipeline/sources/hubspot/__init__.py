"""HubSpot CRM (API v3/v4): the connector (`connector.hubspot_source`) and a local fake of the service
(`fake.FakeHubSpot`); `MAPPING.md` says where each fact of the file drop goes."""
