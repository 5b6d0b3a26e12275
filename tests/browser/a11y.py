"""axe-core in the page, plus what axe does not check.

That is: reflow at 320 px, the declared language, template syntax left on the
page, `autocomplete` present on personal fields, a data table beside each chart.

axe-core comes from the `axe-playwright-python` wheel pinned in
requirements-dev.txt (it bundles one axe-core release, `AXE_VERSION`); it is
injected through the DevTools protocol, so the site's CSP need not allow it,
and nothing is fetched from the network.
"""

import re
from pathlib import Path

import axe_playwright_python

AXE_SCRIPT = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
AXE_VERSION = re.search(r"axe v([\d.]+)", AXE_SCRIPT[:200]).group(1)

# WCAG 2.1 A and AA (the RGAA 4.1's base), 2.2 AA, and Deque's best practices.
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
# The bar is "no serious or critical violation"; moderate ones (content
# outside landmarks, heading order, ...) are RGAA failures too (themes 9 and 12)
# and the site has none: they block as well. Minor ones are left to the audit.
BLOCKING = ("moderate", "serious", "critical")

WIDTHS = {
    "1280px": {"width": 1280, "height": 800},
    # 320 CSS px: a 1280 px screen at 400 % zoom (WCAG 1.4.10 reflow, RGAA 10.11).
    "320px": {"width": 320, "height": 640},
}


# Fields about the person using the page must say what they hold (RGAA 11.13,
# WCAG 1.3.5); axe only checks the values given. In the console, only the
# advisor's own credentials are about the person at the keyboard: the other
# fields there are a caller's details or search filters.
MISSING_AUTOCOMPLETE = """() => {
  const console = location.pathname.startsWith('/conseiller/');
  return [...document.querySelectorAll('main input')]
    .filter(el => ['email', 'tel', 'password'].includes(el.type)
      || (!console && ['nir', 'birth_date', 'mobile_phone', 'code'].includes(el.name)))
    .filter(el => !el.getAttribute('autocomplete'))
    .map(el => el.name || el.id);
}"""


# A chart tells by colours and lengths: its figures must also be in a table of the
# same section (RGAA 1.x and 3.1), the chart itself hidden from screen readers.
CHARTS_WITHOUT_TABLE = """() => [...document.querySelectorAll('svg[class*=chart]')]
  .filter(svg => !(svg.closest('section') && svg.closest('section').querySelector('table caption')))
  .map(svg => svg.getAttribute('class'))"""


def axe_violations(page) -> list[dict]:
    """axe-core's violations of impact moderate, serious or critical on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    result = page.evaluate("options => window.axe.run(document, options)", AXE_OPTIONS)
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


def horizontal_overflow(page) -> list[str]:
    """Elements wider than the viewport that make the page scroll sideways.

    Data tables may scroll inside their own box (WCAG 1.4.10 lets two-dimensional
    content do so): only the page's own horizontal scroll counts.
    """
    return page.evaluate(
        """() => {
          const root = document.documentElement;
          if (root.scrollWidth <= root.clientWidth) return [];
          // Whether an ancestor that clips it (overflow other than visible) holds the
          // element; an absolutely positioned one escapes those below its containing block.
          const clipped = el => {
            const absolute = getComputedStyle(el).position === 'absolute';
            const start = absolute ? el.offsetParent : el.parentElement;
            for (let up = start; up && up !== document.body; up = up.parentElement) {
              if (getComputedStyle(up).overflowX !== 'visible') return true;
            }
            return false;
          };
          const culprits = [];
          for (const el of document.body.querySelectorAll('*')) {
            if (culprits.length >= 5) break;
            const box = el.getBoundingClientRect();
            if (box.right <= root.clientWidth + 1 || !el.getClientRects().length || clipped(el)) continue;
            const classes = typeof el.className === 'string' && el.className.trim()
              ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
            culprits.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${classes} (${Math.round(box.right)}px)`);
          }
          return [`page is ${root.scrollWidth}px wide for ${root.clientWidth}px`, ...culprits];
        }"""
    )


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"  - {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"      {' '.join(map(str, node['target']))}: {node['html'][:160]}")
    return "\n".join(lines)


def page_problems(page, label: str) -> list[str]:
    """Every blocking problem of the current page, at each width (the viewport is restored)."""
    problems = []
    original = page.viewport_size
    lang = page.evaluate("() => document.documentElement.lang")
    if lang != "fr":
        problems.append(f"{label}: <html lang> is {lang!r}, not 'fr'")
    text = page.locator("body").inner_text()
    for leak in ("{#", "{%", "{{"):
        if leak in text:
            problems.append(f"{label}: template syntax shown on the page: {leak!r}")
    charts = page.evaluate(CHARTS_WITHOUT_TABLE)
    if charts:
        problems.append(f"{label}: charts without a data table beside them: {charts}")
    missing = page.evaluate(MISSING_AUTOCOMPLETE)
    if missing:
        problems.append(f"{label}: fields without an autocomplete attribute: {missing}")
    for name, size in WIDTHS.items():
        page.set_viewport_size(size)
        violations = axe_violations(page)
        if violations:
            problems.append(f"{label} at {name}: axe-core {AXE_VERSION}\n{describe(violations)}")
        if name == "320px":
            overflow = horizontal_overflow(page)
            if overflow:
                problems.append(f"{label} at {name}: no reflow: {'; '.join(overflow)}")
    page.set_viewport_size(original)
    return problems


def assert_accessible(page, label: str | None = None) -> None:
    label = label or page.url
    problems = page_problems(page, label)
    assert not problems, "\n".join(problems)
