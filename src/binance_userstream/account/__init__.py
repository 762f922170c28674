"""The account mirror: balances, positions and open orders kept from events, healed from REST."""
