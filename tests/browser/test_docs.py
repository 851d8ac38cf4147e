"""/docs in Chromium: Swagger UI renders the operations under its strict Content-Security-Policy."""

import pytest

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None  # conftest.py skips these tests (or fails them in CI)

pytestmark = pytest.mark.browser

# Runs before the page's own scripts (Playwright injects it, so the CSP does not apply to it).
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} ${event.blockedURI}`);
});
"""


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        # Any other host name (conftest maps coffer.test to 127.0.0.1): Swagger UI would add its
        # online validator badge there (an <img> from validator.swagger.io) unless told not to.
        "coffer.test",
    ],
)
def test_docs_render_the_operations_without_csp_violations(
    page, browser_log, coffer, screenshots, host
):
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    response = page.goto(f"http://{host}:{coffer.port}/docs")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    expect(page.get_by_text("Register a user")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/users").first).to_be_visible()
    assert page.locator(".opblock").count() >= 20
    page.screenshot(path=screenshots / f"docs-{host}.png")
    page.get_by_text("Register a user").click()  # an operation opens with its request body
    expect(page.locator(".opblock.is-open .body-param__example")).to_contain_text('"email"')
    page.wait_for_load_state("networkidle")
    page.screenshot(path=screenshots / f"docs-{host}-register.png")

    assert page.evaluate("window.cspViolations") == []
    assert browser_log.csp_violations == []
    assert browser_log.page_errors == []
