"""SLA: policies, business hours, deadlines and the sweep."""
