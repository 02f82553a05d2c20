//! The route tables of every surface outside `/v2/`: the management API, `/metrics` and the
//! console. Each route names the role it needs where it is declared, and [`RoleNeed::admits`]
//! is the one decision for all of them (the console's navigation asks it too). These tables
//! are the only way those routers are built, so a route without a need does not compile.
//! What a caller may do within a repository is `Caller::actions`, as on `/v2/`.

use auth::Role;
use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use super::{identify, ClientAddr, Who};
use crate::error::MgmtError;
use crate::ui::{UiError, Viewer};
use crate::AppState;

/// The role a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleNeed {
    /// Anyone who reaches it: the console's login and logout.
    Anyone,
    /// Admins and stagers: staging, apps, the console's pages (whose repository data is
    /// further limited to what the viewer may pull).
    Staging,
    /// Admins only: garbage collection, `/metrics`.
    Admin,
}

impl RoleNeed {
    /// Whether a caller of `role` may use a route that needs this.
    pub(crate) fn admits(self, role: Role) -> bool {
        match self {
            RoleNeed::Anyone => true,
            RoleNeed::Staging => matches!(role, Role::Admin | Role::Stager),
            RoleNeed::Admin => role == Role::Admin,
        }
    }

    fn who(self) -> &'static str {
        match self {
            RoleNeed::Anyone => "anyone",
            RoleNeed::Staging => "an admin or a stager",
            RoleNeed::Admin => "an admin",
        }
    }
}

/// Which surface a table serves: how its callers are identified and how a refusal looks.
#[derive(Clone, Copy)]
enum Surface {
    /// `/api/v1` and `/metrics`: Basic credentials or a bearer token; JSON errors.
    Api,
    /// `/ui/`: the console session the session guard put on the request; HTML errors.
    Console,
}

/// A router whose every route names its [`RoleNeed`].
pub(crate) struct Routes {
    state: AppState,
    surface: Surface,
    router: Router<AppState>,
}

impl Routes {
    /// A table for the management API and `/metrics`.
    pub(crate) fn api(state: &AppState) -> Routes {
        Routes { state: state.clone(), surface: Surface::Api, router: Router::new() }
    }

    /// A table for console routes; the router it makes must be wrapped in the console's
    /// session guard, which identifies the viewer.
    pub(crate) fn console(state: &AppState) -> Routes {
        Routes { state: state.clone(), surface: Surface::Console, router: Router::new() }
    }

    /// Adds `path`, refused to callers whose role `need` does not admit.
    pub(crate) fn route(mut self, path: &str, need: RoleNeed, handler: MethodRouter<AppState>) -> Routes {
        let handler = match self.surface {
            Surface::Api => handler.route_layer(from_fn_with_state((self.state.clone(), need), api_guard)),
            Surface::Console => handler.route_layer(from_fn_with_state(need, console_guard)),
        };
        self.router = self.router.route(path, handler);
        self
    }

    pub(crate) fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Every API request passes here: a state-changing one must not be one a browser sends
/// cross-site on its own ([`non_simple`]), then the caller must meet the route's need. No
/// answer is cached: some hold credentials.
async fn api_guard(State((state, need)): State<(AppState, RoleNeed)>, req: Request, next: Next) -> Response {
    let mut resp = match non_simple(&req) {
        Ok(()) => authorize_api(&state, need, req, next).await,
        Err(e) => {
            let path = req.uri().path();
            tracing::info!(target: "wharfage::audit", event = "csrf_refused", path, "management request without a JSON content type");
            e.into_response()
        }
    };
    resp.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}

/// A browser holding Basic credentials for the registry (a login prompt answered once)
/// sends them with any request another site's page makes, but another site can only make
/// *simple* requests without the registry's consent: a form's `application/x-www-form-urlencoded`,
/// `multipart/form-data` or `text/plain` body. So every request that changes something
/// (any method but GET and HEAD) must say `Content-Type: application/json`, body or not,
/// which a cross-site page cannot send without a CORS preflight this server never allows.
/// The one rule for the whole API, on an open registry too (a loopback registry is reachable
/// from the browser on the same machine).
fn non_simple(req: &Request) -> Result<(), MgmtError> {
    if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        return Ok(());
    }
    let content_type = req.headers().get(http::header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = content_type.as_deref().map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if essence.as_deref() == Some("application/json") {
        return Ok(());
    }
    let got = content_type.map_or_else(|| "no Content-Type".to_string(), |c| format!("Content-Type {c:?}"));
    Err(MgmtError::new(
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        crate::mgmt::types::MgmtCode::BadRequest,
        format!(
            "a {} to the management API needs Content-Type: application/json, even without a body (got {got}); \
             this keeps other sites' forms from using a browser's saved login",
            req.method()
        ),
    ))
}

/// Identifies an API caller and lets it through when its role meets the route's need.
async fn authorize_api(state: &AppState, need: RoleNeed, req: Request, next: Next) -> Response {
    let Some(auth) = &state.access.auth else {
        return next.run(req).await;
    };
    let client = req.extensions().get::<ClientAddr>().copied();
    let caller = match identify(state, req.headers(), client).await {
        Ok(c) => c,
        Err(e) => return MgmtError::from(e).into_response(),
    };
    let principal = match &caller.who {
        Who::Open => return next.run(req).await,
        Who::Anonymous => auth::Principal::Anonymous,
        Who::Login(p) => p.clone(),
        Who::Token(v) => v.principal.clone(),
    };
    // An anonymous token (from `/auth/token` without credentials) is no login either: the
    // same 401 as no `Authorization` at all, so a client learns to log in, whichever it sent.
    if principal == auth::Principal::Anonymous && need != RoleNeed::Anyone {
        return MgmtError::unauthorized(format!("log in as {}", need.who())).into_response();
    }
    if !need.admits(auth.policy().role(&principal)) {
        let path = req.uri().path();
        tracing::info!(target: "wharfage::audit", event = "denied", principal = %principal, path, "management request denied");
        return MgmtError::denied(format!("{principal} may not use {path}: it needs {}", need.who())).into_response();
    }
    next.run(req).await
}

/// Lets a console request through when the viewer's role meets the route's need.
async fn console_guard(State(need): State<RoleNeed>, req: Request, next: Next) -> Response {
    let Some(viewer) = req.extensions().get::<Viewer>() else {
        // The session guard always runs first; without a viewer, refuse rather than guess.
        return UiError::forbidden("log in first").into_response();
    };
    if !need.admits(viewer.role) {
        let path = req.uri().path();
        tracing::info!(target: "wharfage::audit", event = "denied", principal = viewer.user.as_deref().unwrap_or("-"), path, "console request denied");
        return UiError::forbidden(format!("this page is for {}", need.who())).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_admit_the_roles_they_name() {
        let cases =
            [(RoleNeed::Anyone, [true, true, true]), (RoleNeed::Staging, [true, true, false]), (RoleNeed::Admin, [true, false, false])];
        for (need, want) in cases {
            let got = [Role::Admin, Role::Stager, Role::None].map(|r| need.admits(r));
            assert_eq!(got, want, "{need:?}");
        }
    }
}
