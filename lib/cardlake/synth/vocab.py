"""Small inline vocabularies: names, places, merchants, archetypes and note templates."""

from __future__ import annotations

FIRST_NAMES_F = (
    "Olivia",
    "Emma",
    "Sophie",
    "Charlotte",
    "Amelia",
    "Isabella",
    "Mia",
    "Grace",
    "Lucy",
    "Hannah",
    "Laura",
    "Sarah",
    "Anna",
    "Julia",
    "Marie",
    "Claire",
    "Elena",
    "Maria",
    "Sofia",
    "Katherine",
    "Elizabeth",
    "Margaret",
    "Jennifer",
    "Patricia",
    "Susan",
    "Rebecca",
    "Victoria",
    "Alexandra",
    "Natalie",
    "Chloe",
    "Aoife",
    "Niamh",
    "Lena",
    "Ines",
    "Lucia",
    "Camille",
)
FIRST_NAMES_M = (
    "Oliver",
    "James",
    "William",
    "Thomas",
    "Jack",
    "Harry",
    "George",
    "Daniel",
    "Michael",
    "Robert",
    "Richard",
    "Joseph",
    "David",
    "Christopher",
    "Matthew",
    "Andrew",
    "Anthony",
    "Benjamin",
    "Samuel",
    "Alexander",
    "Nicholas",
    "Jonathan",
    "Edward",
    "Patrick",
    "Luca",
    "Lukas",
    "Hugo",
    "Pablo",
    "Javier",
    "Pierre",
    "Jan",
    "Sean",
    "Conor",
    "Felix",
    "Mateo",
)
LAST_NAMES = (
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Davies",
    "Wilson",
    "Evans",
    "Thomas",
    "Johnson",
    "Roberts",
    "Walker",
    "Wright",
    "Robinson",
    "Thompson",
    "White",
    "Hughes",
    "Edwards",
    "Green",
    "Hall",
    "Wood",
    "Harris",
    "Clarke",
    "Jackson",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Byrne",
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Martin",
    "Bernard",
    "Dubois",
    "Garcia",
    "Martinez",
    "Lopez",
    "Fernandez",
    "De Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "Kowalski",
    "Nowak",
    "Silva",
    "Santos",
    "Rossi",
    "Russo",
    "Ferrari",
    "Moore",
    "King",
    "Scott",
    "Baker",
    "Young",
    "Allen",
    "Mitchell",
    "Campbell",
    "Stewart",
)
NICKNAMES = {
    "Robert": "Bob",
    "Richard": "Rick",
    "William": "Bill",
    "James": "Jim",
    "Thomas": "Tom",
    "Michael": "Mike",
    "Daniel": "Dan",
    "Christopher": "Chris",
    "Matthew": "Matt",
    "Andrew": "Andy",
    "Anthony": "Tony",
    "Benjamin": "Ben",
    "Samuel": "Sam",
    "Alexander": "Alex",
    "Nicholas": "Nick",
    "Jonathan": "Jon",
    "Edward": "Ed",
    "Joseph": "Joe",
    "David": "Dave",
    "Patrick": "Paddy",
    "Katherine": "Kate",
    "Elizabeth": "Liz",
    "Margaret": "Maggie",
    "Jennifer": "Jen",
    "Patricia": "Pat",
    "Susan": "Sue",
    "Rebecca": "Becky",
    "Victoria": "Vicky",
    "Alexandra": "Alex",
    "Natalie": "Nat",
    "Charlotte": "Lottie",
    "Isabella": "Bella",
    "Amelia": "Millie",
    "Sophie": "Soph",
    "Oliver": "Ollie",
    "Harry": "Haz",
    "Jack": "Jackie",
    "Lukas": "Luke",
    "Elena": "Ellie",
}

EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de")
EMAIL_DOMAIN_ALIASES = {"gmail.com": "googlemail.com", "outlook.com": "hotmail.com"}

# code: (currency, phone country code, local trunk prefix, cities as (city, postcode pattern)).
# Postcode pattern: 'A' letter, '9' digit, anything else literal.
COUNTRIES: dict[str, tuple[str, str, str, tuple[tuple[str, str], ...]]] = {
    "GB": (
        "GBP",
        "44",
        "0",
        (
            ("London", "SW9 9AA"),
            ("Manchester", "M99 9AA"),
            ("Leeds", "LS9 9AA"),
            ("Bristol", "BS9 9AA"),
        ),
    ),
    "IE": ("EUR", "353", "0", (("Dublin", "D99 A999"), ("Cork", "T99 A999"))),
    "DE": ("EUR", "49", "0", (("Berlin", "10999"), ("Munich", "80999"), ("Hamburg", "20999"))),
    "FR": ("EUR", "33", "0", (("Paris", "75099"), ("Lyon", "69099"))),
    "ES": ("EUR", "34", "", (("Madrid", "28099"), ("Barcelona", "08099"))),
    "NL": ("EUR", "31", "0", (("Amsterdam", "1099 AA"), ("Rotterdam", "3099 AA"))),
    "PL": ("PLN", "48", "", (("Warsaw", "09-999"), ("Krakow", "39-999"))),
}
HOME_COUNTRY_WEIGHTS = {
    "GB": 0.40,
    "IE": 0.10,
    "DE": 0.15,
    "FR": 0.12,
    "ES": 0.10,
    "NL": 0.08,
    "PL": 0.05,
}
# Countries that only appear as merchant or travel destinations.
FOREIGN_COUNTRIES: dict[str, str] = {
    "US": "USD",
    "CH": "CHF",
    "SE": "SEK",
    "JP": "JPY",
    "TR": "TRY",
    "AE": "AED",
    "TH": "THB",
    "MX": "MXN",
    "PT": "EUR",
    "IT": "EUR",
}
FOREIGN_CITIES = {
    "US": "New York",
    "CH": "Zurich",
    "SE": "Stockholm",
    "JP": "Tokyo",
    "TR": "Istanbul",
    "AE": "Dubai",
    "TH": "Bangkok",
    "MX": "Mexico City",
    "PT": "Lisbon",
    "IT": "Rome",
}
ALL_COUNTRIES = tuple(COUNTRIES) + tuple(FOREIGN_COUNTRIES)
CURRENCIES = ("USD", "EUR", "GBP", "PLN", "CHF", "SEK", "JPY", "TRY", "AED", "THB", "MXN")
# Units per USD at the start; a random walk moves them daily.
FX_START = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "PLN": 4.0,
    "CHF": 0.88,
    "SEK": 10.5,
    "JPY": 148.0,
    "TRY": 30.0,
    "AED": 3.6725,
    "THB": 35.5,
    "MXN": 17.1,
}
FX_DAILY_VOL = {"USD": 0.0, "AED": 0.0003, "TRY": 0.01}  # others use the default 0.004
UNKNOWN_CURRENCIES = ("XXZ", "QQQ", "ABC", "EUD")
UNKNOWN_COUNTRIES = ("ZZ", "QX", "XY")

STREET_NAMES = (
    "High",
    "Church",
    "Station",
    "Park",
    "Victoria",
    "Green",
    "Mill",
    "Castle",
    "King",
    "Queen",
    "Oak",
    "Maple",
    "River",
    "Bridge",
    "Market",
    "School",
)
STREET_TYPES = ("Street", "Road", "Avenue", "Lane", "Drive", "Place", "Square")
STREET_ABBREV = {
    "Street": "St",
    "Road": "Rd",
    "Avenue": "Ave",
    "Lane": "Ln",
    "Drive": "Dr",
    "Place": "Pl",
    "Square": "Sq",
}

GENDERS = ("F", "M", "X")
MARITAL = ("single", "married", "divorced", "widowed", "partnered")
EDUCATION = ("secondary", "vocational", "bachelor", "master", "doctorate")
OCCUPATIONS = (
    "student",
    "engineer",
    "teacher",
    "nurse",
    "retail",
    "self-employed",
    "manager",
    "clerk",
    "driver",
    "retired",
    "unemployed",
    "artist",
    "developer",
)
INCOME_BRACKETS = ("<20k", "20-40k", "40-70k", "70-120k", ">120k")
PLANS = ("standard", "premium", "metal")
DEVICE_OS = ("ios", "android", "web")

# Merchant category codes: (mcc, category, online-capable, typical amount in USD).
MCCS = (
    ("5411", "grocery", False, 45.0),
    ("5812", "restaurants", False, 35.0),
    ("5814", "fast_food", False, 12.0),
    ("5541", "fuel", False, 60.0),
    ("4111", "transport", False, 8.0),
    ("4900", "utilities", True, 90.0),
    ("5311", "department_store", False, 70.0),
    ("5691", "clothing", True, 80.0),
    ("5732", "electronics", True, 250.0),
    ("5942", "books", True, 25.0),
    ("5816", "digital_goods", True, 15.0),
    ("4814", "telecom", True, 40.0),
    ("7011", "hotels", True, 180.0),
    ("4511", "airlines", True, 320.0),
    ("5912", "pharmacy", False, 20.0),
    ("7832", "cinema", False, 18.0),
    ("5999", "misc_retail", True, 30.0),
    ("6051", "crypto_exchange", True, 400.0),
    ("6211", "brokerage", True, 500.0),
    ("6011", "atm", False, 100.0),
)
MCC_INDEX = {m[1]: i for i, m in enumerate(MCCS)}
MERCHANT_WORDS = (
    "Fresh",
    "City",
    "Blue",
    "Corner",
    "Royal",
    "Green",
    "Urban",
    "Golden",
    "Quick",
    "Prime",
    "Metro",
    "Sun",
    "North",
    "Star",
    "Cloud",
    "Nova",
)
MERCHANT_SUFFIX = {
    "grocery": "Market",
    "restaurants": "Bistro",
    "fast_food": "Burger",
    "fuel": "Petrol",
    "transport": "Transit",
    "utilities": "Energy",
    "department_store": "Stores",
    "clothing": "Apparel",
    "electronics": "Tech",
    "books": "Books",
    "digital_goods": "Games",
    "telecom": "Mobile",
    "hotels": "Hotel",
    "airlines": "Air",
    "pharmacy": "Pharma",
    "cinema": "Cinema",
    "misc_retail": "Shop",
    "crypto_exchange": "Coin",
    "brokerage": "Invest",
    "atm": "ATM",
}

CHANNELS = ("POS", "ATM", "online", "P2P", "top-up", "FX", "crypto", "stock")
CARD_CHANNELS = ("POS", "ATM", "online")
STATES = ("completed", "failed", "declined", "reverted", "pending")

# Archetypes. mcc weights are over MCCS categories; channel weights over CHANNELS.
ARCHETYPES: dict[str, dict] = {
    "digital_spender": {
        "share": 0.25,
        "tx_scale": 1.5,
        "amount_scale": 0.7,
        "amount_sigma": 0.8,
        "channels": (0.35, 0.02, 0.40, 0.12, 0.08, 0.01, 0.01, 0.01),
        "mcc_boost": {"digital_goods": 4, "fast_food": 3, "clothing": 2, "electronics": 1.5},
        "night_share": 0.12,
        "cross_border": 0.04,
        "age": (28, 7),
        "income": 2,
        "plans": (0.5, 0.4, 0.1),
        "churn_mult": 1.0,
        "hour_peak": 20,
    },
    "stable_essentials": {
        "share": 0.30,
        "tx_scale": 1.0,
        "amount_scale": 1.0,
        "amount_sigma": 0.5,
        "channels": (0.70, 0.06, 0.12, 0.05, 0.06, 0.0, 0.0, 0.01),
        "mcc_boost": {"grocery": 5, "utilities": 3, "pharmacy": 2, "fuel": 2},
        "night_share": 0.02,
        "cross_border": 0.02,
        "age": (52, 13),
        "income": 2,
        "plans": (0.8, 0.18, 0.02),
        "churn_mult": 0.5,
        "hour_peak": 11,
    },
    "cash_heavy": {
        "share": 0.18,
        "tx_scale": 0.45,
        "amount_scale": 1.1,
        "amount_sigma": 0.6,
        "channels": (0.35, 0.45, 0.04, 0.06, 0.10, 0.0, 0.0, 0.0),
        "mcc_boost": {"grocery": 3, "fuel": 2, "atm": 6},
        "night_share": 0.04,
        "cross_border": 0.01,
        "age": (45, 16),
        "income": 1,
        "plans": (0.92, 0.07, 0.01),
        "churn_mult": 1.4,
        "hour_peak": 13,
    },
    "high_volatility": {
        "share": 0.12,
        "tx_scale": 1.2,
        "amount_scale": 1.8,
        "amount_sigma": 1.4,
        "channels": (0.25, 0.05, 0.20, 0.15, 0.10, 0.03, 0.12, 0.10),
        "mcc_boost": {"crypto_exchange": 4, "brokerage": 3, "electronics": 2},
        "night_share": 0.15,
        "cross_border": 0.06,
        "age": (33, 9),
        "income": 3,
        "plans": (0.45, 0.35, 0.2),
        "churn_mult": 1.8,
        "hour_peak": 22,
    },
    "cross_border_lifestyle": {
        "share": 0.15,
        "tx_scale": 1.3,
        "amount_scale": 1.6,
        "amount_sigma": 0.9,
        "channels": (0.45, 0.06, 0.25, 0.06, 0.06, 0.10, 0.01, 0.01),
        "mcc_boost": {"hotels": 4, "airlines": 3, "restaurants": 3},
        "night_share": 0.08,
        "cross_border": 0.45,
        "age": (38, 10),
        "income": 4,
        "plans": (0.2, 0.4, 0.4),
        "churn_mult": 0.7,
        "hour_peak": 15,
    },
}
ARCHETYPE_NAMES = tuple(ARCHETYPES)

PRODUCTS = ("wallet", "virtual_card", "savings", "stocks", "crypto", "fx", "budgeting")
PRODUCT_AFFINITY = {  # per archetype, probability of using each product in an active month
    "digital_spender": (0.95, 0.9, 0.3, 0.15, 0.15, 0.1, 0.5),
    "stable_essentials": (0.7, 0.5, 0.6, 0.05, 0.01, 0.05, 0.4),
    "cash_heavy": (0.5, 0.2, 0.2, 0.01, 0.01, 0.02, 0.1),
    "high_volatility": (0.9, 0.7, 0.2, 0.8, 0.85, 0.3, 0.2),
    "cross_border_lifestyle": (0.9, 0.85, 0.4, 0.2, 0.1, 0.9, 0.3),
}

SERVICE_CHANNELS = ("phone", "chat", "email", "branch")
SENTIMENTS = ("negative", "neutral", "positive")
# topic: (typical resolution minutes, note templates per sentiment)
NOTE_TOPICS: dict[str, tuple[float, dict[str, tuple[str, ...]]]] = {
    "card_blocked": (
        25.0,
        {
            "negative": (
                "Customer furious that card was blocked at {place}, could not pay.",
                "Card blocked again, customer says this is unacceptable.",
            ),
            "neutral": (
                "Card blocked after wrong PIN attempts, unblocked after ID check.",
                "Customer asked why card was blocked; explained security hold.",
            ),
            "positive": ("Card unblocked quickly, customer thanked the agent.",),
        },
    ),
    "dispute_charge": (
        180.0,
        {
            "negative": (
                "Customer disputes charge of {amount} at {place}, very upset.",
                "Unrecognised payment of {amount}; customer angry about delay.",
            ),
            "neutral": ("Customer queried a charge of {amount}; dispute form sent.",),
            "positive": ("Charge of {amount} refunded, customer happy with outcome.",),
        },
    ),
    "fraud_report": (
        240.0,
        {
            "negative": (
                "Customer reports fraud: payments they did not make, new device seen.",
                "Account accessed from abroad, customer scared and angry.",
            ),
            "neutral": ("Suspicious transactions reported; card replaced, case opened.",),
            "positive": ("Fraud case resolved, funds returned; customer relieved and grateful.",),
        },
    ),
    "fees_complaint": (
        40.0,
        {
            "negative": (
                "Customer complains about monthly fees, considering closing account.",
                "Angry about FX fees on {place} purchase, wants to leave.",
            ),
            "neutral": ("Customer asked for a breakdown of plan fees.",),
            "positive": ("Fee waived as goodwill, customer satisfied.",),
        },
    ),
    "app_login": (
        15.0,
        {
            "negative": ("Cannot log in to the app for days, customer frustrated.",),
            "neutral": ("Password reset on new phone, walked customer through login.",),
            "positive": ("Login issue fixed, customer says the app is great.",),
        },
    ),
    "plan_upgrade": (
        10.0,
        {
            "negative": ("Upgrade did not apply, customer annoyed to be charged.",),
            "neutral": ("Customer asked about premium and metal plan benefits.",),
            "positive": ("Customer upgraded plan and loves the new card.",),
        },
    ),
    "address_change": (
        20.0,
        {
            "negative": ("Address change failed twice, customer irritated.",),
            "neutral": ("Customer moved; address updated in profile.",),
            "positive": ("Address updated smoothly, customer pleased.",),
        },
    ),
    "travel_notice": (
        8.0,
        {
            "negative": ("Card declined abroad despite travel notice, customer upset.",),
            "neutral": ("Travel notice added for upcoming trip.",),
            "positive": ("Travel notice set, customer thanked us for the quick help.",),
        },
    ),
}
NOTE_TOPIC_NAMES = tuple(NOTE_TOPICS)
CAMPAIGNS = ("none", "spring_cashback", "metal_upsell", "travel_promo", "winback", "referral")
BUREAUS = ("Equifax", "Experian", "TransUnion", "Schufa")
DEBT_TYPES = ("personal_loan", "credit_card", "overdraft", "car_loan", "mortgage")
PAYMENT_METHOD_TYPES = ("debit_card", "credit_card", "bank_transfer", "apple_pay", "google_pay")
ACCOUNT_TYPES = ("current", "savings", "wallet")
