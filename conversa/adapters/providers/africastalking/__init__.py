"""Africa's Talking SMS: the ``africastalking`` driver and its delivery reports."""
