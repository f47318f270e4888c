"""Deterministic synthetic "repayment claims" data set for demos and tests."""

from __future__ import annotations

import datetime as dt

import numpy as np

LABELS = ["legit", "fraud", "duplicate"]

FIELDS = [
    {"name": "amount", "label": "Amount", "format": "money", "unit": "EUR"},
    {"name": "currency", "label": "Currency", "format": "category"},
    {"name": "country", "label": "Country", "format": "category"},
    {"name": "merchant_category", "label": "Merchant category", "format": "category"},
    {"name": "channel", "label": "Channel", "format": "category"},
    {
        "name": "days_since_purchase",
        "label": "Days since purchase",
        "format": "int",
        "unit": "days",
    },
    {
        "name": "customer_tenure_months",
        "label": "Customer tenure",
        "format": "int",
        "unit": "months",
    },
    {"name": "previous_claims_12m", "label": "Claims in last 12 months", "format": "int"},
    {"name": "purchase_date", "label": "Purchase date", "format": "date"},
    {"name": "note", "label": "Customer note", "format": "text"},
]

COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "BE", "AT", "PL"]
COUNTRY_P = [0.28, 0.2, 0.12, 0.12, 0.1, 0.07, 0.06, 0.05]
CATEGORIES = ["groceries", "fashion", "electronics", "travel", "gaming", "utilities"]
CATEGORY_P = [0.25, 0.2, 0.17, 0.14, 0.12, 0.12]
CHANNELS = ["web", "app", "phone", "branch"]
CHANNEL_P = [0.45, 0.33, 0.12, 0.10]

# Reasons are latent: they shape both the note text and the label, so the
# note carries signal a text-aware model can exploit beyond the numbers.
REASONS = ["not_received", "charged_twice", "card_stolen", "defective", "cancelled", "unrecognised"]
REASON_P = [0.24, 0.2, 0.1, 0.18, 0.16, 0.12]
NOTE_TEMPLATES = {
    "not_received": [
        "I never received my order from the {cat} shop.",
        "Package never received, tracking stopped {days} days ago.",
        "Paid {amount} EUR but the item never arrived.",
    ],
    "charged_twice": [
        "I was charged twice for the same purchase.",
        "Charged twice for one {cat} order, please refund one.",
        "The {amount} EUR payment appears two times on my statement.",
    ],
    "card_stolen": [
        "My card was stolen, I did not make this payment.",
        "Card stolen last week, this {cat} charge is not mine.",
        "I lost my wallet and someone used my card for {amount} EUR.",
    ],
    "defective": [
        "The product arrived broken and the seller does not answer.",
        "Item was defective, I returned it {days} days ago and got nothing back.",
        "Wrong item delivered, seller refuses a refund.",
    ],
    "cancelled": [
        "I cancelled the booking but was still charged.",
        "Subscription cancelled, yet they charged me {amount} EUR again.",
        "Order cancelled within the allowed period, no refund yet.",
    ],
    "unrecognised": [
        "I do not recognise this {cat} transaction.",
        "Unknown merchant on my statement, please check.",
        "No idea what this {amount} EUR charge is.",
    ],
}
CATEGORY_RISK = {
    "groceries": -0.6,
    "fashion": 0.0,
    "electronics": 0.7,
    "travel": 0.2,
    "gaming": 0.9,
    "utilities": -0.8,
}
CHANNEL_RISK = {"web": 0.0, "app": -0.2, "phone": 0.9, "branch": -0.8}
REASON_FRAUD = {"card_stolen": 0.8, "unrecognised": 0.5, "not_received": 0.2}


def _pick(rng: np.random.Generator, options: list[str], p: list[float], n: int) -> list[str]:
    """Draws n categorical values as plain python strings."""
    return [options[i] for i in rng.choice(len(options), size=n, p=p)]


def generate_claims(n: int, seed: int = 7) -> list[dict]:
    """Returns n dicts {"external_id", "payload", "label"}; same seed gives identical output."""
    rng = np.random.default_rng(seed)
    amount = np.clip(rng.lognormal(mean=np.log(180), sigma=1.05, size=n), 20, 5000)
    country = _pick(rng, COUNTRIES, COUNTRY_P, n)
    category = _pick(rng, CATEGORIES, CATEGORY_P, n)
    channel = _pick(rng, CHANNELS, CHANNEL_P, n)
    reason = _pick(rng, REASONS, REASON_P, n)
    days = np.minimum(rng.exponential(scale=30, size=n).astype(int), 180)
    tenure = np.minimum(rng.gamma(shape=1.6, scale=30, size=n).astype(int), 240)
    prev = np.minimum(rng.poisson(lam=0.6 + 1.5 * (tenure < 12), size=n), 12)
    # Purchases are dated backwards from the claim, so both stay within 2026.
    claim_day = rng.integers(180, 365, size=n)
    template_idx = rng.integers(0, 3, size=n)
    noise = rng.gumbel(size=(n, 3))

    rows = []
    for i in range(n):
        cat, chan, why = category[i], channel[i], reason[i]
        fraud = (
            -2.8
            + 1.8 * (np.log(amount[i]) - np.log(180))
            + 1.5 * (tenure[i] < 6)
            - 0.02 * tenure[i]
            + 0.8 * prev[i]
            + 2.0 * CATEGORY_RISK[cat]
            + 2.0 * CHANNEL_RISK[chan]
            + REASON_FRAUD.get(why, 0.0)
        )
        duplicate = (
            -0.6
            + 1.4 * (why == "charged_twice")
            + 3.5 * (days[i] <= 3)
            - 0.15 * days[i]
            + 0.6 * (chan == "web")
        )
        # Gumbel noise turns the scores into a softmax draw: a noisy but learnable rule.
        label = LABELS[int(np.argmax(np.array([0.0, fraud, duplicate]) + noise[i]))]
        purchase = dt.date(2026, 1, 1) + dt.timedelta(days=int(claim_day[i]) - int(days[i]))
        note = NOTE_TEMPLATES[why][template_idx[i]].format(
            cat=cat, days=int(days[i]), amount=f"{amount[i]:.2f}"
        )
        payload = {
            "amount": round(float(amount[i]), 2),
            "currency": "EUR",
            "country": country[i],
            "merchant_category": cat,
            "channel": chan,
            "days_since_purchase": int(days[i]),
            "customer_tenure_months": int(tenure[i]),
            "previous_claims_12m": int(prev[i]),
            "purchase_date": purchase.isoformat(),
            "note": note,
        }
        rows.append({"external_id": f"claim-{i + 1:06d}", "payload": payload, "label": label})
    return rows
