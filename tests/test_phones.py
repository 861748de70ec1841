import pytest

from records.phones import PhoneNumberError, display, normalise


@pytest.mark.parametrize("raw", [
    "+852 9123 4567", "9123-4567", "91234567", "00852 91234567", "+852-9123-4567",
    "(852) 9123 4567", " 9123 4567 ", "sip:+85291234567@10.0.0.1;user=phone", "tel:+85291234567",
    "9123.4567",
])
def test_local_formats_normalise_to_e164(raw):
    assert normalise(raw) == "+85291234567"


def test_foreign_numbers_keep_their_country():
    assert normalise("+44 20 7946 0958") == "+442079460958"
    assert normalise("0044 20 7946 0958") == "+442079460958"
    assert normalise("07946 095811", region="GB") == "+447946095811"


@pytest.mark.parametrize("raw,why", [
    ("", "empty"), ("12", "too short"), ("abc", "not a phone number"), ("9123 4567 x12", "only digits"),
    ("+852 91+234567", "may only start"), ("+999 1234 5678", "country code"),
    ("+852 1234567890123456", "too long"),
])
def test_impossible_numbers_are_refused_with_a_reason(raw, why):
    with pytest.raises(PhoneNumberError, match=why):
        normalise(raw)


def test_display_is_national_for_local_numbers():
    assert display("+85291234567") == "9123 4567"
    assert display("+442079460958") == "+44 20 7946 0958"
