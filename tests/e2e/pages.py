"""What the e2e tests ask of a page: contacts to join, layout, names, focus order, contrast."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from playwright.async_api import Frame, Page

from tests.e2e.conftest import API_KEY, Server

CONTACT = {"customer_id": "cust-e2e", "account": "AR-42", "balance_cents": 12_345, "media": "voice"}
#: Roles that are controls: each must have an accessible name.
CONTROL_ROLES = ("button", "textbox", "checkbox", "combobox", "link", "slider")
_CONTROL_LINE = re.compile(r"^\s*- (" + "|".join(CONTROL_ROLES) + r")\b(.*)$")

_COLOURS = """() => {
  const visible = (element) => {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden";
  };
  const backdrop = (element) => {
    for (let at = element; at; at = at.parentElement) {
      const colour = getComputedStyle(at).backgroundColor;
      if (colour !== "transparent" && !/^rgba\\(.*,\\s*0\\)$/.test(colour)) return colour;
    }
    return getComputedStyle(document.documentElement).backgroundColor;
  };
  const pairs = [];
  for (const element of document.querySelectorAll("body *")) {
    const text = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!(text || element.matches("input")) || !visible(element)) continue;
    pairs.push({
      what: element.id || `${element.tagName.toLowerCase()} ${element.textContent.trim()}`,
      color: getComputedStyle(element).color,
      background: backdrop(element),
    });
  }
  return pairs;
}"""


async def create_contact(server: Server, **overrides: Any) -> dict[str, Any]:
    """A contact made through the business API: its id, token and join URL."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/v1/contacts",
            json=CONTACT | overrides,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created


def join_path(contact: str, token: str) -> str:
    """The customer page's join link, as a path."""
    return f"/?contact={contact}&token={token}"


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scroll)."""
    overflow: int = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


async def unnamed_controls(page: Page | Frame) -> list[str]:
    """Controls in the accessibility tree of ``main`` that have no accessible name."""
    snapshot = await page.locator("main").aria_snapshot()
    unnamed = []
    for line in snapshot.splitlines():
        match = _CONTROL_LINE.match(line)
        if match and not match.group(2).lstrip().startswith('"'):
            unnamed.append(line.strip())
    return unnamed


async def control_names(page: Page | Frame) -> list[str]:
    """Every control of ``main``, as ``role "name"``, in document order."""
    snapshot = await page.locator("main").aria_snapshot()
    names = []
    for line in snapshot.splitlines():
        match = _CONTROL_LINE.match(line)
        if match:
            named = re.match(r'\s*("[^"]*")', match.group(2))
            names.append(f"{match.group(1)} {named.group(1) if named else ''}".strip())
    return names


async def focused(page: Page) -> str:
    """The focused element: its id, else its keypad key, else its tag."""
    name: str = await page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.id || (e.dataset && e.dataset.digit) || e.tagName.toLowerCase(); }"
    )
    return name


async def tab_order(page: Page, count: int) -> list[str]:
    """The elements focus visits on ``count`` presses of Tab."""
    visited = []
    for _ in range(count):
        await page.keyboard.press("Tab")
        visited.append(await focused(page))
    return visited


async def small_targets(page: Page) -> list[str]:
    """Visible buttons and inputs smaller than 44 × 44 CSS pixels."""
    small: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("button, input")]
          .filter((e) => { const b = e.getBoundingClientRect(); return b.width > 0; })
          .filter((e) => { const b = e.getBoundingClientRect();
                           return b.width < 44 || b.height < 44; })
          .map((e) => `${e.id || e.textContent.trim()}: ${e.getBoundingClientRect().width}x`
                      + `${e.getBoundingClientRect().height}`)"""
    )
    return small


def _rgba(text: str) -> tuple[float, float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", text)]
    assert text.startswith("rgb") and len(numbers) in (3, 4), f"not an rgb() colour: {text}"
    return (numbers[0], numbers[1], numbers[2], numbers[3] if len(numbers) == 4 else 1.0)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two computed CSS colours (a translucent text is blended)."""
    fr, fg, fb, alpha = _rgba(foreground)
    br, bg, bb, _ = _rgba(background)
    blended = (
        fr * alpha + br * (1 - alpha),
        fg * alpha + bg * (1 - alpha),
        fb * alpha + bb * (1 - alpha),
    )
    lighter, darker = sorted((_luminance(blended), _luminance((br, bg, bb))), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


async def low_contrast(page: Page, minimum: float = 4.5) -> list[str]:
    """Visible text whose colour and backdrop contrast less than ``minimum``."""
    pairs: list[dict[str, str]] = await page.evaluate(_COLOURS)
    assert pairs, "no visible text to check"
    return [
        f"{p['what'][:40]}: {p['color']} on {p['background']} = {ratio:.2f}"
        for p in pairs
        if (ratio := contrast(p["color"], p["background"])) < minimum
    ]
