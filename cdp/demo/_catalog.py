"""Products, web pages and survey phrases for the demo generator.

Purchases, product views and survey interests all come from the same eight
categories, so a person's interests show up consistently across sources (a weak
but real signal, as in production data). Feedback phrases are grouped by tone so
the text of a survey answer agrees with its scores.
"""

from __future__ import annotations

from typing import Final

CATEGORIES: Final = ("outdoor", "tech", "fashion", "home", "beauty", "sports", "travel", "food")

# fmt: off
# (sku, category, price in USD)
PRODUCTS: Final[tuple[tuple[str, str, float], ...]] = (
    ("OUT-1001", "outdoor", 129.0), ("OUT-1002", "outdoor", 49.5), ("OUT-1003", "outdoor", 24.0),
    ("OUT-1004", "outdoor", 289.0), ("OUT-1005", "outdoor", 15.5), ("OUT-1006", "outdoor", 74.0),
    ("TEC-2001", "tech", 599.0), ("TEC-2002", "tech", 89.0), ("TEC-2003", "tech", 19.9),
    ("TEC-2004", "tech", 249.0), ("TEC-2005", "tech", 34.5), ("TEC-2006", "tech", 1199.0),
    ("FAS-3001", "fashion", 39.9), ("FAS-3002", "fashion", 89.0), ("FAS-3003", "fashion", 19.5),
    ("FAS-3004", "fashion", 149.0), ("FAS-3005", "fashion", 24.9), ("FAS-3006", "fashion", 59.0),
    ("HOM-4001", "home", 29.9), ("HOM-4002", "home", 119.0), ("HOM-4003", "home", 9.9),
    ("HOM-4004", "home", 349.0), ("HOM-4005", "home", 44.0), ("HOM-4006", "home", 15.0),
    ("BEA-5001", "beauty", 18.5), ("BEA-5002", "beauty", 42.0), ("BEA-5003", "beauty", 9.5),
    ("BEA-5004", "beauty", 65.0), ("BEA-5005", "beauty", 27.0), ("BEA-5006", "beauty", 12.9),
    ("SPO-6001", "sports", 79.0), ("SPO-6002", "sports", 24.5), ("SPO-6003", "sports", 139.0),
    ("SPO-6004", "sports", 9.9), ("SPO-6005", "sports", 54.0), ("SPO-6006", "sports", 219.0),
    ("TRV-7001", "travel", 159.0), ("TRV-7002", "travel", 29.0), ("TRV-7003", "travel", 12.5),
    ("TRV-7004", "travel", 89.0), ("TRV-7005", "travel", 239.0), ("TRV-7006", "travel", 19.9),
    ("FOO-8001", "food", 6.5), ("FOO-8002", "food", 12.9), ("FOO-8003", "food", 4.2),
    ("FOO-8004", "food", 24.0), ("FOO-8005", "food", 8.8), ("FOO-8006", "food", 39.0),
)

# Site pages other than category and product pages: (name, path, category).
SITE_PAGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("Home", "/", "home"), ("Home", "/", "home"), ("Home", "/", "home"), ("Search", "/search", "search"),
    ("Cart", "/cart", "checkout"), ("Account", "/account", "account"), ("Help", "/help", "support"),
    ("Stores", "/stores", "support"), ("Sale", "/sale", "promotion"), ("New In", "/new", "promotion"),
)
SITE_URL: Final = "https://shop.example.com"
NEWSLETTER_LISTS: Final = ("weekly", "offers", "new-arrivals")

# Survey feedback by language and tone ("pos", "neu", "neg").
FEEDBACK: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "en": {
        "pos": ("Great service, will shop again.", "Love the new collection!", "Fast delivery and friendly staff.",
                "Really happy with my purchase.", "Staff were super helpful.", "Best store in town, thanks!",
                "Excellent quality for the price.", "Smooth checkout, no complaints."),
        "neu": ("It was okay.", "Fine overall, nothing special.", "Prices are a bit high but quality is ok.",
                "Average experience.", "Delivery took a while but arrived fine.",
                "Store was busy, found what I needed."),
        "neg": ("Waited too long at checkout.", "Item arrived damaged.", "Rude staff, very disappointed.",
                "Website kept crashing during payment.", "Refund still not processed.",
                "Too expensive, poor quality.",
                "Out of stock again."),
    },
    "zh": {
        "pos": ("服务很好，下次还会再来。", "质量不错，很满意！", "物流很快，店员很热情。", "非常喜欢，推荐给朋友了。",
                "性价比很高。"),
        "neu": ("还可以吧。", "一般般，没什么特别的。", "价格有点贵，质量还行。", "排队时间有点长。"),
        "neg": ("等了太久，体验很差。", "收到的商品有破损。", "客服态度不好，很失望。", "退款到现在还没到账。",
                "质量太差了，不会再买。"),
    },
    "de": {
        "pos": ("Toller Service, gerne wieder!", "Sehr zufrieden mit dem Einkauf.", "Schnelle Lieferung, top."),
        "neu": ("War in Ordnung.", "Ganz okay, nichts Besonderes.", "Etwas teuer, aber gute Qualität."),
        "neg": ("Viel zu lange gewartet.", "Ware kam beschädigt an.", "Sehr enttäuscht vom Kundenservice."),
    },
    "fr": {
        "pos": ("Très bon accueil, je reviendrai !", "Super qualité, ravie de mon achat.", "Livraison rapide, merci."),
        "neu": ("Correct, sans plus.", "Expérience moyenne.", "Un peu cher mais bonne qualité."),
        "neg": ("Attente beaucoup trop longue.", "Article reçu abîmé.", "Service client décevant."),
    },
}
# fmt: on
