"""WeChat Official Account adapter: pushed messages become tickets, answered passively or by the
customer-service API."""
