//! The one place console errors become HTML. Statuses are the management API's (a
//! [`MgmtError`] chosen in `crate::error`), shown as a page instead of JSON, so the console
//! and the API always agree on what a failure is.

use askama::Template;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::MgmtError;

/// A console request that failed: its status and a message for the operator.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        UiError { status, message: message.into() }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        UiError::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        UiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        UiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<MgmtError> for UiError {
    fn from(e: MgmtError) -> Self {
        let (status, _, message) = e.parts();
        UiError::new(status, message)
    }
}

/// Everything the management API maps, mapped the same way.
macro_rules! via_mgmt {
    ($($t:ty),*) => {$(
        impl From<$t> for UiError {
            fn from(e: $t) -> Self {
                UiError::from(MgmtError::from(e))
            }
        }
    )*};
}
via_mgmt!(store::StoreError, oci::ParseError, auth::AuthError, crate::service::ServiceError);

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
    asset_v: &'static str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
            asset_v: super::assets::version(),
        };
        let mut r = match page.render() {
            Ok(html) => super::html(html),
            Err(_) => self.message.clone().into_response(),
        };
        *r.status_mut() = self.status;
        r
    }
}
