"""binance-userstream: placeholder until the facade lands."""
