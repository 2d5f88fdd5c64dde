"""Vonage (formerly Nexmo) SMS API: the ``vonage`` driver and its webhooks."""
