//! The page frame (navigation, sign-out form), error and sign-in pages,
//! and the stylesheet (served as a file: the CSP allows no inline style
//! or script).

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1d3557;color:#fff;padding:.5em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}
header a{color:#fff;text-decoration:none} header a:hover{text-decoration:underline}
header .who{margin-left:auto;font-size:.9em}
header form{display:inline} header button{font-size:.8em}
main{padding:1em;max-width:72em;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em} th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.cards{display:flex;flex-wrap:wrap;gap:1em} .card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.7em 1em;min-width:12em}
.error{color:#b00020} .ok{color:#1b5e20} pre{white-space:pre-wrap;word-break:break-all;background:#fff;border:1px solid #ddd;padding:.5em}
form.inline{display:inline} input,select,button{font-size:1em} img.chart{max-width:100%;height:auto;background:#fff;border:1px solid #ddd}
.legend span{margin-right:1em}
";

pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// A whole page for a signed-in person.
pub fn page(s: &Session, title: &str, body: Markup) -> Response {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · postern" }
                    link rel="stylesheet" href="/console/style.css";
                }
                body {
                    header {
                        strong { "postern" }
                        a href="/console/" { "Overview" }
                        a href="/console/queue" { "Queue" }
                        a href="/console/credentials" { "Credentials" }
                        a href="/console/audit" { "Audit log" }
                        a href="/console/config" { "Configuration" }
                        span class="who" {
                            (s.name_id) " (" (s.role.as_str()) ") "
                            form method="post" action="/console/signout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

fn bare(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · postern" }
                link rel="stylesheet" href="/console/style.css";
            }
            body { header { strong { "postern" } } main { h1 { (title) } (body) } }
        }
    }
    .into_string()
}

pub fn error(status: StatusCode, s: Option<&Session>, message: &str) -> Response {
    let body =
        html! { p class="error" { (message) } p { a href="/console/" { "Back to the console" } } };
    match s {
        Some(s) => {
            let mut r = page(s, status.canonical_reason().unwrap_or("Error"), body);
            *r.status_mut() = status;
            r
        }
        None => (
            status,
            Html(bare(status.canonical_reason().unwrap_or("Error"), body)),
        )
            .into_response(),
    }
}

/// The sign-in page. `local_csrf` is the break-glass form's token (its
/// cookie is set by the caller); `None` when there are no local admins.
pub fn signin(saml: bool, local_csrf: Option<&str>, problem: Option<&str>) -> Response {
    let body = html! {
        @if let Some(p) = problem { p class="error" { (p) } }
        @if saml {
            p { a id="sso" href="/saml/login" { "Sign in with your identity provider" } }
        }
        @if let Some(csrf) = local_csrf {
            details {
                summary { "Break-glass sign-in (when the identity provider is down)" }
                form method="post" action="/console/signin" {
                    input type="hidden" name="csrf" value=(csrf);
                    p { label { "Username " input name="username" autocomplete="username"; } }
                    p { label { "Password " input name="password" type="password" autocomplete="current-password"; } }
                    button type="submit" { "Sign in" }
                }
            }
        }
    };
    Html(bare("Sign in", body)).into_response()
}
