//! Who is calling, and what they may do to a repository.

use std::fmt;

use oci::AppId;
use store::CredentialId;

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A user of the htpasswd file.
    User(String),
    /// A per-app pull credential: `pull` on `apps/<app>` and nothing else.
    App { app: AppId, credential: CredentialId },
}

impl Principal {
    /// The user name a pull credential is presented under: `<app>+<credential id>`. `+`
    /// never occurs in an app id, so the name parses back unambiguously.
    pub fn app_user_name(app: &AppId, credential: &CredentialId) -> String {
        format!("{app}+{credential}")
    }

    /// Parses a pull credential's user name; `None` for any other name.
    pub fn parse_app_user(name: &str) -> Option<(AppId, CredentialId)> {
        let (app, id) = name.rsplit_once('+')?;
        Some((AppId::parse(app).ok()?, CredentialId::parse(id).ok()?))
    }

    /// The token `sub` claim: the user name, the pull credential's name, or empty.
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => String::new(),
            Principal::User(u) => u.clone(),
            Principal::App { app, credential } => Principal::app_user_name(app, credential),
        }
    }

    /// The principal a token's `sub` names.
    pub fn from_subject(sub: &str) -> Principal {
        if sub.is_empty() {
            Principal::Anonymous
        } else if let Some((app, credential)) = Principal::parse_app_user(sub) {
            Principal::App { app, credential }
        } else {
            Principal::User(sub.to_string())
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anonymous => f.write_str("anonymous"),
            other => f.write_str(&other.subject()),
        }
    }
}

/// A set of repository actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    /// Parses one action name (`pull`, `push`, `delete`; `*` is all of them).
    pub fn parse_one(s: &str) -> Option<Actions> {
        match s {
            "pull" => Some(Actions::PULL),
            "push" => Some(Actions::PUSH),
            "delete" => Some(Actions::DELETE),
            "*" => Some(Actions::ALL),
            _ => None,
        }
    }

    /// Parses a comma-separated list, ignoring names it does not know (a client may ask
    /// for actions this registry has no use for; they are simply not granted).
    pub fn parse_list(s: &str) -> Actions {
        s.split(',').filter_map(|a| Actions::parse_one(a.trim())).fold(Actions::NONE, |acc, a| acc | a)
    }

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, in the order clients write them.
    pub fn names(self) -> Vec<&'static str> {
        [(Actions::PULL, "pull"), (Actions::PUSH, "push"), (Actions::DELETE, "delete")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| n)
            .collect()
    }
}

impl std::ops::BitOr for Actions {
    type Output = Actions;
    fn bitor(self, o: Actions) -> Actions {
        Actions(self.0 | o.0)
    }
}

impl std::ops::BitAnd for Actions {
    type Output = Actions;
    fn bitand(self, o: Actions) -> Actions {
        Actions(self.0 & o.0)
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_user_names_round_trip() {
        let app = AppId::parse("shop-web").unwrap();
        let id = CredentialId::parse("0123456789abcdef").unwrap();
        let name = Principal::app_user_name(&app, &id);
        assert_eq!(name, "shop-web+0123456789abcdef");
        assert_eq!(Principal::from_subject(&name), Principal::App { app, credential: id });
        assert_eq!(Principal::from_subject("ci"), Principal::User("ci".into()));
        assert_eq!(Principal::from_subject("a+b"), Principal::User("a+b".into()));
        assert_eq!(Principal::from_subject(""), Principal::Anonymous);
    }

    #[test]
    fn action_lists() {
        assert_eq!(Actions::parse_list("pull,push"), Actions::PULL | Actions::PUSH);
        assert_eq!(Actions::parse_list("*"), Actions::ALL);
        assert_eq!(Actions::parse_list("pull,frobnicate"), Actions::PULL);
        assert_eq!((Actions::PULL | Actions::DELETE).to_string(), "pull,delete");
        assert!(Actions::ALL.contains(Actions::PUSH) && !Actions::PULL.contains(Actions::PUSH));
    }
}
