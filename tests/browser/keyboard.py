"""Moving through a page with the keyboard alone, and checking that the focus can be seen."""

FOCUS_STATE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  // The DSFR draws the ring on the element, or on its ::before for a link
  // enlarged to its card or block (fr-enlarge-link).
  const indicated = [null, '::before', '::after'].some(pseudo => {
    const style = getComputedStyle(el, pseudo);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    return outline || (style.boxShadow && style.boxShadow !== 'none');
  });
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(),
    id: el.id,
    text: (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 80),
    visible: box.width > 0 && box.height > 0,
    indicated,
  };
}"""


def focused(page) -> dict | None:
    """The focused element: its tag, id, text, and whether it is seen with a focus indicator."""
    return page.evaluate(FOCUS_STATE)


def assert_focus_visible(page) -> dict:
    state = focused(page)
    assert state is not None, "nothing has the focus"
    assert state["visible"] and state["indicated"], f"focus not visible on {state}"
    return state


def has_focus(locator) -> bool:
    return locator.evaluate("el => el === document.activeElement")


def tab_to(page, locator, *, max_presses: int = 60) -> None:
    """Press Tab until `locator` has the focus; every element met on the way shows its focus.

    Past the page's last element the focus leaves the page (the browser's own
    controls) and comes back to its first one, as for a person.
    """
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        if focused(page) is None:
            continue
        assert_focus_visible(page)
        if has_focus(locator):
            return
    raise AssertionError(f"{locator} never got the focus with Tab")


def date_digits(page, iso: str) -> str:
    """The digits a person types into this browser's date field for the date `iso`.

    Their order follows the browser's own language (day first with Debian's
    chromium-l10n in French, month first with the bare package): ask the browser.
    """
    probe = page.context.new_page()
    try:
        probe.set_content('<input type="date" aria-label="date">')
        probe.focus("input")
        probe.keyboard.type("01022003")
        day_first = probe.input_value("input") == "2003-02-01"
    finally:
        probe.close()
    year, month, day = iso.split("-")
    return day + month + year if day_first else month + day + year
