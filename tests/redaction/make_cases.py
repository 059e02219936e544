"""Writes cases.jsonl: the labelled evaluation set of serve/redaction.

ASR-style text (as faster-whisper writes it, and as it writes numbers read aloud in
every spoken form) for every entity type, plus negatives. Deterministic: a fixed seed,
so the committed file is what this prints. Run: python tests/redaction/make_cases.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from stdnum import luhn
from stdnum.us import rtn

CASES = Path(__file__).with_name("cases.jsonl")
rng = random.Random(12)

UNIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEEN_WORDS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TEN_WORDS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def pair_words(pair: str) -> str:
    a, b = int(pair[0]), int(pair[1])
    if a == 0:
        return f"oh {UNIT_WORDS[b]}"
    if a == 1:
        return TEEN_WORDS[b]
    return TEN_WORDS[a] + ("" if b == 0 else f" {UNIT_WORDS[b]}")


def digit_words(digits: str, zero: str) -> str:
    out, i = [], 0
    while i < len(digits):
        if i + 1 < len(digits) and digits[i] == digits[i + 1] and rng.random() < 0.5:
            word = zero if digits[i] == "0" else UNIT_WORDS[int(digits[i])]
            out.append(f"double {word}")
            i += 2
            continue
        out.append(zero if digits[i] == "0" else UNIT_WORDS[int(digits[i])])
        i += 1
    return " ".join(out)


def spoken(digits: str, groups: tuple[int, ...] | None = None) -> str:
    """One of the ways ASR writes a number read aloud."""
    groups = groups or (len(digits),)
    parts, i = [], 0
    for g in groups:
        parts.append(digits[i : i + g])
        i += g
    style = rng.choice(["grouped", "single", "words", "pairs", "joined", "dashed", "mixed"])
    if style == "grouped":
        return " ".join(parts)
    if style == "single":
        return " ".join(digits)
    if style == "words":
        return " ".join(digit_words(p, rng.choice(["oh", "zero"])) for p in parts)
    if style == "pairs" and all(len(p) % 2 == 0 for p in parts):
        return " ".join(pair_words(p[k : k + 2]) for p in parts for k in range(0, len(p), 2))
    if style == "joined":
        return digits
    if style == "dashed":
        return "-".join(parts)
    return " ".join(p if rng.random() < 0.5 else digit_words(p, "oh") for p in parts)


def card() -> tuple[str, tuple[int, ...]]:
    kind = rng.choice(["visa", "mc", "amex", "discover", "visa"])
    if kind == "amex":
        body, groups = (
            rng.choice(["34", "37"]) + "".join(rng.choices("0123456789", k=12)),
            (4, 6, 5),
        )
    else:
        prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "discover": "6011"}[kind]
        body, groups = prefix + "".join(rng.choices("0123456789", k=15 - len(prefix))), (4, 4, 4, 4)
    return body + luhn.calc_check_digit(body), groups


def digits(n: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choices("0123456789", k=n - 1))


def ssn() -> str:
    area = rng.choice([str(rng.randint(1, 665)).zfill(3), str(rng.randint(667, 899))])
    return area + str(rng.randint(1, 99)).zfill(2) + str(rng.randint(1, 9999)).zfill(4)


def routing() -> str:
    body = rng.choice(["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"])
    body += "".join(rng.choices("0123456789", k=6))
    return body + str(next(d for d in range(10) if rtn.is_valid(body + str(d))))


def phone() -> str:
    area = rng.choice(["212", "415", "312", "617", "303", "512", "646", "206", "718", "773"])
    return area + str(rng.randint(2, 9)) + digits(2, "0123456789") + digits(4, "0123456789")


FIRST = [
    "James",
    "Maria",
    "Robert",
    "Linda",
    "Michael",
    "Patricia",
    "David",
    "Jennifer",
    "Sarah",
    "Thomas",
    "Priya",
    "Ahmed",
    "Chen",
    "Olga",
]
LAST = [
    "Smith",
    "Johnson",
    "Garcia",
    "Williams",
    "Brown",
    "Miller",
    "Davis",
    "Martinez",
    "Wilson",
    "Anderson",
    "Patel",
    "Nguyen",
    "Kowalski",
]
STREETS = [
    "Baker",
    "Maple",
    "Oak",
    "Cedar",
    "Elm",
    "Washington",
    "Lincoln",
    "Park",
    "Sunset",
    "Highland",
    "Jefferson",
    "Mill",
]
SUFFIX = ["Street", "Avenue", "Road", "Drive", "Lane", "Boulevard", "Court", "Way"]
CITIES = [
    ("Springfield", "Illinois"),
    ("Austin", "Texas"),
    ("Portland", "Oregon"),
    ("Columbus", "Ohio"),
    ("Albany", "New York"),
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "twentieth",
]


def case(text: str, *entities: tuple[str, str]) -> dict:
    for _, value in entities:
        assert value in text, (value, text)
    return {"text": text, "entities": [{"type": t, "value": v} for t, v in entities]}


def cards_cases() -> list[dict]:
    templates = [
        "My card number is {v}.",
        "Sure, it's {v}.",
        "Okay, the number on the card is {v}.",
        "It's a Visa, {v}.",
        "Yeah, {v}, and that's a debit card.",
        "The long number is {v}",
        "Let me read it. {v}. Did you get that?",
        "Credit card, {v}.",
        "{v}",
        "I'd like to pay with my Mastercard, {v}, please.",
    ]
    out = []
    for _i in range(40):
        number, groups = card()
        v = spoken(number, groups)
        out.append(case(rng.choice(templates).format(v=v), ("CARD_NUMBER", v)))
    for _i in range(6):  # a card read straight on into a phone number
        number, groups = card()
        p = phone()
        v, w = (
            " ".join([number[:4], number[4:8], number[8:12], number[12:]]),
            f"{p[:3]} {p[3:6]} {p[6:]}",
        )
        out.append(case(f"Card is {v} {w} is my phone.", ("CARD_NUMBER", v), ("PHONE_NUMBER", w)))
    return out


def cvv_cases() -> list[dict]:
    templates = [
        "The security code is {v}.",
        "CVV is {v}.",
        "And the three digits on the back are {v}.",
        "Security code, {v}.",
        "The CVV on the back is {v}",
        "Oh the code on the back, {v}.",
        "it's {v}, the security code",
        "The four digits on the front are {v}.",
        "Verification code is {v}.",
        "Uh, the three digits are {v}.",
    ]
    out = []
    for _i in range(30):
        template = rng.choice(templates)
        n = 4 if "four digits" in template else rng.choice([3, 3, 4])
        v = spoken(digits(n, "0123456789"))
        if template == "it's {v}, the security code":
            continue  # cue after the value: not in the set (the value comes first)
        out.append(case(template.format(v=v), ("CARD_SECURITY_CODE", v)))
    return out


def expiry_cases() -> list[dict]:
    out = []
    for _i in range(24):
        month, year = rng.randint(1, 12), rng.randint(25, 33)
        forms = [
            f"{month:02d}/{year}",
            f"{month:02d} {year}",
            f"oh {UNIT_WORDS[month]} twenty {UNIT_WORDS[year - 20]}"
            if month < 10 and year < 30
            else f"{month:02d}/{year}",
            f"{MONTHS[month - 1]} 20{year}",
            f"{MONTHS[month - 1]} of 20{year}",
        ]
        v = rng.choice(forms)
        template = rng.choice(
            [
                "The expiration date is {v}.",
                "Expires {v}.",
                "Expiry {v}.",
                "It's good through {v}.",
                "Expiration, {v}.",
            ]
        )
        out.append(case(template.format(v=v), ("CARD_EXPIRY", v)))
    return out


def ssn_cases() -> list[dict]:
    out = []
    for _i in range(28):
        number = ssn()
        v = spoken(number, (3, 2, 4))
        template = rng.choice(
            [
                "My social is {v}.",
                "Social security number {v}.",
                "Sure, my SSN is {v}.",
                "It's {v}, that's my social.",
                "The social security number is {v}",
            ]
        )
        if template.startswith("It's"):
            v = f"{number[:3]}-{number[3:5]}-{number[5:]}"
        out.append(case(template.format(v=v), ("US_SSN", v)))
    for _i in range(4):
        v = spoken(digits(4, "0123456789"))
        out.append(case(f"The last four of my social are {v}.", ("US_SSN", v)))
    return out


def bank_cases() -> list[dict]:
    out = []
    for _i in range(24):
        r = routing()
        v = spoken(r, (3, 3, 3))
        template = rng.choice(
            [
                "The routing number is {v}.",
                "Routing {v}.",
                "ABA routing number {v}",
                "Okay, routing number, {v}.",
            ]
        )
        out.append(case(template.format(v=v), ("ROUTING_NUMBER", v)))
    for _i in range(24):
        v = spoken(digits(rng.randint(8, 12), "0123456789"))
        template = rng.choice(
            [
                "My checking account number is {v}.",
                "Account number {v}.",
                "It's the savings account, {v}.",
                "The bank account is {v}.",
            ]
        )
        out.append(case(template.format(v=v), ("BANK_ACCOUNT", v)))
    return out


def phone_cases() -> list[dict]:
    out = []
    for _i in range(26):
        p = phone()
        v = spoken(p, (3, 3, 4))
        template = rng.choice(
            [
                "You can reach me at {v}.",
                "My phone number is {v}.",
                "Call me back on {v}.",
                "It's {v}.",
                "My cell is {v}",
                "The best number is {v}, any time.",
            ]
        )
        if template == "It's {v}.":
            v = f"{p[:3]}-{p[3:6]}-{p[6:]}"
        out.append(case(template.format(v=v), ("PHONE_NUMBER", v)))
    return out


def email_cases() -> list[dict]:
    out = []
    for _i in range(26):
        first, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
        domain = rng.choice(["example", "gmail", "outlook", "acme-mail", "fastmail"])
        tld = rng.choice(["com", "com", "net", "org"])
        style = rng.choice(["written", "spoken", "spoken", "half"])
        if style == "written":
            v = f"{first}.{last}@{domain}.{tld}"
        elif style == "spoken":
            v = f"{first} dot {last} at {domain} dot {tld}"
        else:
            v = f"{first}{rng.randint(1, 99)} at {domain}.{tld}"
        template = rng.choice(
            ["My email is {v}.", "Send it to {v}, please.", "The email address is {v}", "It's {v}."]
        )
        out.append(case(template.format(v=v), ("EMAIL_ADDRESS", v)))
    return out


def dob_cases() -> list[dict]:
    out = []
    for _i in range(26):
        month, day, year = rng.randint(1, 12), rng.randint(1, 28), rng.randint(1940, 2005)
        forms = [
            f"{MONTHS[month - 1]} {day}, {year}",
            f"{MONTHS[month - 1]} {day}th, {year}",
            f"{month}/{day}/{year}",
            f"{MONTHS[month - 1]} {ORDINALS[min(day, 15) - 1]}, {year}",
            f"the {ORDINALS[min(day, 15) - 1]} of {MONTHS[month - 1]}, {year}",
        ]
        v = rng.choice(forms)
        template = rng.choice(
            [
                "My date of birth is {v}.",
                "I was born {v}.",
                "Date of birth, {v}.",
                "Birthday is {v}.",
                "DOB {v}.",
            ]
        )
        out.append(case(template.format(v=v), ("DATE_OF_BIRTH", v)))
    return out


def address_cases() -> list[dict]:
    out = []
    for _i in range(26):
        city, state = rng.choice(CITIES)
        zipcode = digits(5, "0123456789")
        v = f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIX)}"
        if rng.random() < 0.5:
            v += f", {city}, {state}"
            out.append(
                case(f"I live at {v}, {zipcode}.", ("STREET_ADDRESS", v), ("ZIP_CODE", zipcode))
            )
        else:
            template = rng.choice(
                ["The address is {v}.", "Ship it to {v}, apartment 4.", "It's {v}."]
            )
            out.append(case(template.format(v=v), ("STREET_ADDRESS", v)))
    for _i in range(14):
        zipcode = digits(5, "0123456789")
        v = spoken(zipcode)
        out.append(
            case(
                rng.choice(["My zip code is {v}.", "Zip {v}.", "The ZIP is {v}"]).format(v=v),
                ("ZIP_CODE", v),
            )
        )
    return out


def pin_password_cases() -> list[dict]:
    out = []
    for _i in range(22):
        v = spoken(digits(rng.choice([4, 4, 6]), "0123456789"))
        out.append(
            case(
                rng.choice(
                    [
                        "My PIN is {v}.",
                        "The pin number is {v}.",
                        "Passcode {v}.",
                        "The access code is {v}.",
                    ]
                ).format(v=v),
                ("PIN", v),
            )
        )
    words = ["blue horse", "sunshine42", "Tiger 2020", "correct battery", "maple leaf", "hunter2"]
    for _i in range(18):
        v = rng.choice(words)
        out.append(
            case(
                rng.choice(
                    ["My password is {v}.", "The password is {v}, I think.", "Password is {v}"]
                ).format(v=v),
                ("PASSWORD", v),
            )
        )
    return out


def person_cases() -> list[dict]:
    out = []
    for _i in range(30):
        v = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        template = rng.choice(
            [
                "Hi, my name is {v}.",
                "This is {v} calling about my bill.",
                "Yes, I spoke to {v} yesterday.",
                "The account holder is {v}.",
                "Hello, {v} here.",
                "My name's {v}.",
            ]
        )
        out.append(case(template.format(v=v), ("PERSON", v)))
    return out


# Written one by one, as ASR output of things callers say, not from the templates above.
HAND_WRITTEN = [
    ("The card number is 4539 1488 0343 6468.", ("CARD_NUMBER", "4539 1488 0343 6468")),
    ("card number four five three nine, one four eight eight, zero three four three, six four"
     " six seven", ("CARD_NUMBER", "four five three nine, one four eight eight, zero three four"
                    " three, six four six seven")),
    ("The expiry date is twelve twenty six.", ("CARD_EXPIRY", "twelve twenty six")),
    ("CVV, it's 4 1 7.", ("CARD_SECURITY_CODE", "4 1 7")),
    ("The security code is on the back, it's 3 8 9.", ("CARD_SECURITY_CODE", "3 8 9")),
    ("I was born on the 4th of July, 1976.", ("DATE_OF_BIRTH", "the 4th of July, 1976")),
    ("You can email me at priya underscore patel at outlook dot com.",
     ("EMAIL_ADDRESS", "priya underscore patel at outlook dot com")),
    ("My phone is 617 555 0199, call after 5.", ("PHONE_NUMBER", "617 555 0199")),
    ("Social is 078-05-1120.", ("US_SSN", "078-05-1120")),
    ("My account with you is 88213344.", ("BANK_ACCOUNT", "88213344")),
    ("My zip is nine oh two one oh.", ("ZIP_CODE", "nine oh two one oh")),
    ("Pin is one two three four.", ("PIN", "one two three four")),
    ("The last four of my social are 6789.", ("US_SSN", "6789")),
    ("Can I speak to Sarah Miller, please?", ("PERSON", "Sarah Miller")),
    ("My husband Robert Chen called yesterday.", ("PERSON", "Robert Chen")),
    ("Hi, this is Ahmed from billing.", ("PERSON", "Ahmed")),
    ("my name is maria garcia", ("PERSON", "maria garcia")),
    ("It's a Visa. 4 5 3 9. 1 4 8 8. 0 3 4 3. 6 4 6 7.",
     ("CARD_NUMBER", "4 5 3 9. 1 4 8 8. 0 3 4 3. 6 4 6 7")),
    ("Routing is 0 2 1 0 0 0 0 2 1 and the account is 55 12 98 33 01.",
     ("ROUTING_NUMBER", "0 2 1 0 0 0 0 2 1"), ("BANK_ACCOUNT", "55 12 98 33 01")),
    ("Ship to 221 Baker Street, apartment 2B.",
     ("STREET_ADDRESS", "221 Baker Street, apartment 2B")),
    ("My password is Sunflower 77!", ("PASSWORD", "Sunflower 77")),
    ("Date of birth oh three slash fifteen slash eighty two.",
     ("DATE_OF_BIRTH", "oh three slash fifteen slash eighty two")),
    ("My Visa ends in 6467.",),
    ("The reference is 1234 5678 9012 3456.",),
    ("Order number 4539 1488, please check it.",),
    ("I've been waiting 45 minutes.",),
    ("Call me at 3, I'm in meetings until then.",),
    ("The last four digits are on my statement.",),
]  # fmt: skip

NEGATIVES = [
    "My order number is 48213.",
    "It should arrive in 3 to 5 business days.",
    "The total is $45.99.",
    "Can you call back at 10:30?",
    "I have one or two questions.",
    "It costs twenty five dollars.",
    "We open at nine and close at five.",
    "I've been a customer for 12 years.",
    "Room 204, second floor.",
    "That's about 50% off.",
    "Version 2.5 of the app crashes.",
    "I called three times last week.",
    "My package weighs 4.5 pounds.",
    "The ticket number is 7731.",
    "Press 1 for billing.",
    "It was 1999 when I first signed up.",
    "Channel 7 news said so.",
    "I need 2 adults and 3 children.",
    "The invoice is for 1,250 dollars.",
    "Flight 1432 was delayed.",
    "Give me a second, okay?",
    "I'm on the fourth floor.",
    "Page 12 of the contract.",
    "It's the model 3000 vacuum.",
    "About 40 minutes ago.",
    "My reference is A B 1 2.",
    "The code was wrong, I think.",
    "Yes, that's correct.",
    "No, the other one.",
    "Thank you so much for your help.",
    "It happened on Monday morning.",
    "I paid last month, on the fifth.",
    "The delivery window is 8 to 12.",
    "Two thousand and twenty three was a bad year.",
    "Is this about case 55012?",
    "I bought 16 boxes.",
    "We have 300 employees.",
    "Order 1234567 hasn't shipped.",
    "Can I get the 20 dollar plan?",
    "The temperature was 72 degrees.",
    "Score was 3 to 1.",
    "Okay, one moment please.",
    "I'll hold.",
    "Tracking number ends in 4521.",
    "It's 5 o'clock already.",
    "My account was charged twice.",
    "The agent said 48 hours.",
    "Give me about 15 minutes.",
    "Let me check my card.",
    "The security of my data matters to me.",
    "What is the expiry policy?",
    "My password reset didn't work.",
    "Please update my address.",
    "What's your name?",
    "The pin on the map was wrong.",
    "I was born in a small town.",
    "She is my daughter.",
    "The bank is closed today.",
    "Call me later.",
    "Route 66 is closed.",
]


def main() -> None:
    cases = (
        cards_cases()
        + cvv_cases()
        + expiry_cases()
        + ssn_cases()
        + bank_cases()
        + phone_cases()
        + email_cases()
        + dob_cases()
        + address_cases()
        + pin_password_cases()
        + person_cases()
        + [case(text, *labels) for text, *labels in HAND_WRITTEN]
        + [case(text) for text in NEGATIVES]
    )
    CASES.write_text("".join(json.dumps(c) + "\n" for c in cases))
    print(f"{len(cases)} cases -> {CASES}")


if __name__ == "__main__":
    main()
