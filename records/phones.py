"""Phone numbers as residents give them and as caller ID delivers them.

Everything is stored in E.164 (`+85291234567`) so a lookup by caller ID is one indexed
equality. libphonenumber's metadata decides what is a possible number; we only pick the
default region (the property's country) for numbers dialled without a country code.
"""

from __future__ import annotations

import os
import re

import phonenumbers

DEFAULT_REGION = os.environ.get("HOTLINE_REGION", "HK")

# Caller IDs arrive as SIP URIs too: sip:+85291234567@host;user=phone
_SIP_URI = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)
_ALLOWED = re.compile(r"^[0-9+\-().\s/]+$")


class PhoneNumberError(ValueError):
    """A number that cannot be a phone number, with the reason."""


def normalise(raw: str, region: str | None = None) -> str:
    """Return the E.164 form of `raw` or raise PhoneNumberError saying why not."""
    region = region or DEFAULT_REGION
    text = (raw or "").strip()
    match = _SIP_URI.match(text)
    if match:
        text = match.group(1)
    if not text:
        raise PhoneNumberError("empty phone number")
    if not _ALLOWED.match(text):
        raise PhoneNumberError(
            f"'{raw}' is not a phone number (only digits, spaces, dashes, dots, brackets and a leading +)"
        )
    compact = re.sub(r"[\s\-().\/]", "", text)
    if "+" in compact[1:]:
        raise PhoneNumberError(f"'{raw}': a '+' may only start the number")
    if compact.startswith("00"):  # international prefix used in most of the world
        compact = "+" + compact[2:]
    try:
        parsed = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        why = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
            phonenumbers.NumberParseException.TOO_LONG: "too long",
        }.get(exc.error_type, "not a possible number")
        raise PhoneNumberError(f"'{raw}' is not a phone number: {why}") from None
    if not phonenumbers.is_possible_number(parsed):
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        why = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length for its country",
        }.get(reason, "not a possible number")
        raise PhoneNumberError(f"'{raw}' is not a phone number: {why}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_normalise(raw: str, region: str | None = None) -> str | None:
    try:
        return normalise(raw, region)
    except PhoneNumberError:
        return None


def display(e164: str, region: str | None = None) -> str:
    """National format for local numbers, international for the rest."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    home = phonenumbers.country_code_for_region(region or DEFAULT_REGION)
    fmt = (phonenumbers.PhoneNumberFormat.NATIONAL if parsed.country_code == home
           else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(parsed, fmt)
