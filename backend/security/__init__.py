"""Security: the credential vault and the redaction of secrets from logs and audit data.

Import the text helper as ``from backend.security.redact import redact``:
the package does not re-export ``redact`` so that ``backend.security.redact``
always names the module, never the function.
"""

from backend.security.redact import (  # noqa: F401
    REDACTED, RedactingFilter, install_log_redaction, is_secret_key, redact_data, register_secret,
    register_secrets, safe_error_message,
)
from backend.security.vault import (  # noqa: F401
    CredentialsUnreadable, Vault, generate_key, open_account_credentials, open_oauth_token, parse_key_list,
    seal_account_credentials, seal_oauth_token,
)
