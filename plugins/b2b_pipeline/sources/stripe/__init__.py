"""Stripe (billing): the connector (`connector.stripe_source`) and a local fake of the API (`fake.FakeStripe`)."""
