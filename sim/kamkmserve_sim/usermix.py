"""Who uses kamkmserve and how: the endpoint mix, sessions, client IPs and user agents of simulated users."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kamkmserve_sim.routes import AppRequest
from kamkmserve_sim.uploads import UploadFile

_PNG = b"\x89PNG\r\n\x1a\n" + bytes(60)  # 68 bytes, like the tiny.png of the captured run
_PDF = b"%PDF-1.7\n" + bytes(2039)
_UPLOADS = (  # (weight, file)
    (70, UploadFile("avatar.png", "image/png", _PNG)),
    (10, UploadFile("brief.pdf", "application/pdf", _PDF)),
    (12, UploadFile("setup.exe", "application/octet-stream", b"MZ\x90\x00" + bytes(200))),
    (8, UploadFile("fake.png", "text/plain", b"not really a picture\n")),
)
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5"
    " Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:141.0) Gecko/20100101 Firefox/141.0",
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    weight: float
    signed_in: float = 0.0  # share of these requests made with a session
    admin: float = 0.0  # share of signed-in ones that are admins


# Baseline 4xx stays near 2 % so the app's own health rule (which counts 4xx) reads healthy when nothing
# is wrong; cart, cart items and checkout carry a third of the traffic, enough for a bad release to show.
ENDPOINTS = (
    Endpoint("GET", "/", 24, signed_in=0.3),
    Endpoint("GET", "/services", 14, signed_in=0.3),
    Endpoint("GET", "/blog", 5),
    Endpoint("GET", "/pricing", 4),
    Endpoint("GET", "/about", 2),
    Endpoint("GET", "/api/cart", 14, signed_in=0.97),
    Endpoint("POST", "/api/cart/items", 10, signed_in=0.98),
    Endpoint("POST", "/api/checkout", 9, signed_in=0.98),
    Endpoint("POST", "/api/contact", 1.5),
    Endpoint("GET", "/api/admin/orders", 1.2, signed_in=0.8, admin=0.9),
    Endpoint("POST", "/api/uploads", 1.5),
    Endpoint("GET", "/api/checkout", 0.3),
    Endpoint("GET", "/services/web-design-basic", 0.4),  # stale link: the 404 page
)


class TrafficModel:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._endpoints: tuple[Endpoint, ...] = ENDPOINTS
        self._weights = [e.weight for e in ENDPOINTS]
        self._ips = [f"{net}.{host}" for net in ("198.51.100", "203.0.113", "192.0.2") for host in range(2, 254)]

    def add(self, endpoints: tuple[Endpoint, ...]) -> None:
        """More endpoints in the mix: a scenario's extra traffic (e.g. admins in the admin area)."""
        self._endpoints = (*self._endpoints, *endpoints)
        self._weights = [e.weight for e in self._endpoints]

    def next_request(self) -> AppRequest:
        rng = self._rng
        endpoint = rng.choices(self._endpoints, weights=self._weights)[0]
        role = None
        if rng.random() < endpoint.signed_in:
            role = "ADMIN" if rng.random() < endpoint.admin else "USER"
        upload = None
        content_type = ""
        json_body: object = None
        if endpoint.path == "/api/uploads":
            upload = rng.choices([f for _, f in _UPLOADS], weights=[w for w, _ in _UPLOADS])[0]
            content_type = "multipart/form-data; boundary=----sim"
        elif endpoint.path == "/api/contact":
            content_type = "application/json"
            json_body = {"name": "Visitor", "email": "visitor@example.com", "message": "Hello"}
        return AppRequest(
            method=endpoint.method, path=endpoint.path, forwarded_for=rng.choice(self._ips),
            user_agent=rng.choice(_USER_AGENTS), role=role, content_type=content_type, upload=upload,
            json_body=json_body,
        )
