"""How the review page shows images: a URL is an <img> only when the queue's display marks
the field as an image and its host is on the queue's allow-list (anything else is a link, so
a payload cannot make reviewers' browsers fetch from any host); arrays of grey levels are
drawn as an SVG of their own size."""

from html.parser import HTMLParser

from tests.review.test_review_pages import login

ALLOWED = "https://img.example.org/scans/1.png"
OTHER_HOST = "https://tracker.example.com/pixel.png"
LOOKALIKE = "https://img.example.org.tracker.example.com/x.png"
PAGE_ON_ALLOWED_HOST = "https://img.example.org/about"


class Page(HTMLParser):
    """The page's images, links, and each SVG with its rectangles' fills."""

    def __init__(self, html: str):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.svgs: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "a":
            self.links.append(a.get("href"))
        elif tag == "svg" and "pixels" in a.get("class", ""):
            self.svgs.append({**a, "fills": []})
        elif tag == "rect" and self.svgs:
            self.svgs[-1]["fills"].append((int(a["x"]), int(a["y"]), a["fill"]))

    handle_startendtag = handle_starttag


def _review_page(client, make, payload: dict) -> Page:
    lead = make.user("lead")
    queue = {
        "name": "scans",
        "labels": ["zero", "one"],
        "policy": {"audit_rate": 0},
        "display": {
            "image_hosts": ["img.example.org"],
            "fields": [
                {"name": "scan", "format": "image"},
                {"name": "other_host", "format": "image"},
                {"name": "lookalike", "format": "image"},
                {"name": "script", "format": "image"},
            ],
        },
    }
    assert client.post("/api/v1/queues", json=queue, headers=lead["headers"]).status_code == 201
    r = client.post(
        "/api/v1/queues/scans/items",
        json={"items": [{"external_id": "s-1", "payload": payload}]},
        headers=lead["headers"],
    )
    assert r.json["created"] == 1, r.json
    login(client, make.user("reviewer", queues=["scans"]))
    page = client.get("/queues/scans/review")
    assert page.status_code == 200 and "s-1" in page.text
    return Page(page.text)


def test_only_image_fields_on_allowed_hosts_are_shown_as_images(client, make):
    page = _review_page(
        client,
        make,
        {
            "scan": ALLOWED,
            "other_host": OTHER_HOST,
            "lookalike": LOOKALIKE,
            "script": "javascript:alert(1)",
            "homepage": PAGE_ON_ALLOWED_HOST,  # an allowed host, but not an image field
        },
    )
    assert page.images == [ALLOWED]
    for url in (OTHER_HOST, LOOKALIKE, PAGE_ON_ALLOWED_HOST):
        assert url in page.links, url
    assert not any(href and href.startswith("javascript:") for href in page.links)


def test_pixel_arrays_are_drawn_as_svgs_of_their_size(client, make):
    digit = [[0, 0.5, 1, 1], [0, 0, 1, 0.5], [1, 1, 1, 1]]  # 3 rows of 4
    big = [[(x + y) % 256 for x in range(28)] for y in range(28)]
    too_big = [[0] * 65 for _ in range(65)]  # more than 64 a side: not drawn
    page = _review_page(client, make, {"digit": digit, "big": big, "too_big": too_big})
    # Payload order is the database's (PostgreSQL's JSONB sorts keys): find them by label.
    svgs = {svg["aria-label"]: svg for svg in page.svgs}
    assert set(svgs) == {"Digit: 3×4 image", "Big: 28×28 image"}
    small, large = svgs["Digit: 3×4 image"], svgs["Big: 28×28 image"]
    # One unit per pixel, 8 screen pixels per unit up to 224 wide.
    assert small["viewbox"] == "0 0 4 3" and small["width"] == "32"
    assert len(small["fills"]) == 12
    # Grey levels scaled from the array's own range (here 0..1) to 0..255.
    grey = {(x, y): fill for x, y, fill in small["fills"]}
    assert grey[(0, 0)] == "rgb(0,0,0)"
    assert grey[(1, 0)] == "rgb(128,128,128)"
    assert grey[(2, 0)] == "rgb(255,255,255)"
    assert grey[(3, 1)] == "rgb(128,128,128)"
    assert large["viewbox"] == "0 0 28 28" and large["width"] == "224"
    assert len(large["fills"]) == 28 * 28
    assert page.images == []
