"""llmsec-aio: a security gateway for self-hosted LLMs, answering NGINX auth_request."""

__version__ = "0.1.0"
