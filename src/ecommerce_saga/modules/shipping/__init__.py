"""Shipping: delivery estimates, carriers and one shipment per order."""
