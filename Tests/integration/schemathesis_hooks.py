"""Schemathesis hooks for test_api_contract.py.

HTTP/1.1 forbids control characters in header field values and anything but
token characters in field names (RFC 9110, 5.1 and 5.5);
SwiftNIO's parser answers such a request with a bare 400 and closes the
connection before any route sees it. That is the HTTP layer refusing a
malformed message, not an answer of the API, so such headers are dropped from
the generated cases before they are sent."""
import schemathesis


def _valid_field_value(value):
    return all(ch == "\t" or 0x20 <= ord(ch) <= 0x7E or ord(ch) >= 0x80 for ch in str(value)) \
        and all(ord(ch) != 0x7F for ch in str(value))


_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Drops the generated headers that are not valid HTTP (every phase sends through here)."""
    if case.headers:
        for k in [k for k, v in case.headers.items() if not (k and set(k) <= _TCHAR and _valid_field_value(v))]:
            del case.headers[k]
