//! Roles and repository rules: who may do what. Rules only grant; what none grants is
//! denied. Admins may do everything; a pull credential pulls its app's repository only.

use std::collections::HashSet;

use serde::Deserialize;

use crate::{Actions, AuthError, Principal};

/// One `[[access]]` table of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// User names; `*` is any authenticated user, `anonymous` is a caller without login.
    pub users: Vec<String>,
    /// Globs on repository names: `*` stops at `/`, `**` does not.
    pub repositories: Vec<String>,
    /// `pull`, `push`, `delete`.
    pub actions: Vec<String>,
}

/// What a caller may do on the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: both APIs, garbage collection, the catalog.
    Admin,
    /// The management API's staging and app endpoints; not garbage collection.
    Stager,
    /// No management API.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Authenticated,
    Anonymous,
    Named(String),
}

#[derive(Debug, Clone)]
struct Compiled {
    users: Vec<Who>,
    repositories: Vec<Glob>,
    actions: Actions,
}

/// Roles and rules, checked once at start.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    admins: HashSet<String>,
    stagers: HashSet<String>,
    rules: Vec<Compiled>,
}

impl Policy {
    /// Checks the rules; errors name the rule (1-based) and the bad value.
    pub fn new(admins: &[String], stagers: &[String], rules: &[Rule]) -> Result<Policy, AuthError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let at = |what: String| AuthError::Config(format!("access rule {}: {what}", i + 1));
            if r.users.is_empty() || r.repositories.is_empty() || r.actions.is_empty() {
                return Err(at("needs users, repositories and actions".into()));
            }
            let users = r
                .users
                .iter()
                .map(|u| match u.as_str() {
                    "*" => Ok(Who::Authenticated),
                    "anonymous" => Ok(Who::Anonymous),
                    "" => Err(at("an empty user name".into())),
                    name => Ok(Who::Named(name.to_string())),
                })
                .collect::<Result<_, _>>()?;
            let repositories = r.repositories.iter().map(|g| Glob::new(g).map_err(at)).collect::<Result<_, _>>()?;
            let mut actions = Actions::NONE;
            for a in &r.actions {
                match Actions::parse_one(a) {
                    Some(x) if a != "*" => actions = actions | x,
                    _ => return Err(at(format!("unknown action {a:?} (use pull, push, delete)"))),
                }
            }
            compiled.push(Compiled { users, repositories, actions });
        }
        Ok(Policy { admins: admins.iter().cloned().collect(), stagers: stagers.iter().cloned().collect(), rules: compiled })
    }

    /// The caller's management role.
    pub fn role(&self, p: &Principal) -> Role {
        match p {
            Principal::User(u) if self.admins.contains(u) => Role::Admin,
            Principal::User(u) if self.stagers.contains(u) => Role::Stager,
            _ => Role::None,
        }
    }

    /// What the caller may do on `repo`.
    pub fn actions(&self, p: &Principal, repo: &str) -> Actions {
        let who_matches = |w: &Who| match (w, p) {
            (Who::Anonymous, Principal::Anonymous) => true,
            (Who::Authenticated, Principal::User(_)) => true,
            (Who::Named(n), Principal::User(u)) => n == u,
            _ => false,
        };
        match p {
            Principal::User(u) if self.admins.contains(u) => Actions::ALL,
            Principal::App { app, .. } if repo.strip_prefix("apps/") == Some(app.as_str()) => Actions::PULL,
            Principal::App { .. } => Actions::NONE,
            _ => self
                .rules
                .iter()
                .filter(|r| r.users.iter().any(who_matches) && r.repositories.iter().any(|g| g.matches(repo)))
                .fold(Actions::NONE, |acc, r| acc | r.actions),
        }
    }

    /// Whether the caller may list every repository (`/v2/_catalog`): admins only, since
    /// the catalog names repositories a caller may not otherwise know of.
    pub fn catalog(&self, p: &Principal) -> bool {
        self.role(p) == Role::Admin
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(u8),
    /// `*`: any run of characters but `/`.
    Star,
    /// `**`: any run of characters.
    DoubleStar,
}

/// A glob on repository names. A glob that does not start with `apps/` never matches a
/// repository under `apps/`: pinned app images are granted only by rules that say so.
#[derive(Debug, Clone)]
pub struct Glob {
    tokens: Vec<Token>,
    names_apps: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b);
        if pattern.is_empty() || !pattern.bytes().all(ok) {
            return Err(format!("repository pattern {pattern:?}: use lowercase names, '/', '*' and '**'"));
        }
        let b = pattern.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'*' {
                if b.get(i + 1) == Some(&b'*') {
                    tokens.push(Token::DoubleStar);
                    i += 2;
                } else {
                    tokens.push(Token::Star);
                    i += 1;
                }
                if b.get(i) == Some(&b'*') {
                    return Err(format!("repository pattern {pattern:?}: at most two '*' in a row"));
                }
            } else {
                tokens.push(Token::Literal(b[i]));
                i += 1;
            }
        }
        Ok(Glob { tokens, names_apps: pattern.starts_with("apps/") })
    }

    pub fn matches(&self, repo: &str) -> bool {
        if repo.starts_with("apps/") && !self.names_apps {
            return false;
        }
        // `at[j]`: the tokens so far can match the first `j` bytes of the name.
        let s = repo.as_bytes();
        let mut at = vec![false; s.len() + 1];
        at[0] = true;
        for t in &self.tokens {
            let mut next = vec![false; s.len() + 1];
            for j in 0..=s.len() {
                if !at[j] {
                    continue;
                }
                match t {
                    Token::Literal(c) => {
                        if s.get(j) == Some(c) {
                            next[j + 1] = true;
                        }
                    }
                    Token::Star | Token::DoubleStar => {
                        next[j] = true;
                        let mut k = j;
                        while k < s.len() && (*t == Token::DoubleStar || s[k] != b'/') {
                            k += 1;
                            next[k] = true;
                        }
                    }
                }
            }
            at = next;
        }
        at[s.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(users: &[&str], repos: &[&str], actions: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule { users: v(users), repositories: v(repos), actions: v(actions) }
    }

    #[test]
    fn globs() {
        let g = Glob::new("team/*").unwrap();
        assert!(g.matches("team/web") && !g.matches("team/web/x") && !g.matches("team") && !g.matches("other/web"));
        let g = Glob::new("team/**").unwrap();
        assert!(g.matches("team/web/x") && g.matches("team/a"));
        let g = Glob::new("**").unwrap();
        assert!(g.matches("a/b/c") && !g.matches("apps/shop"), "apps/ needs a rule naming it");
        assert!(Glob::new("apps/*").unwrap().matches("apps/shop"));
        assert!(Glob::new("*-cache").unwrap().matches("build-cache") && !Glob::new("*-cache").unwrap().matches("x/build-cache"));
        assert!(Glob::new("Team/*").is_err() && Glob::new("a/***").is_err() && Glob::new("").is_err());
    }

    #[test]
    fn rules_only_grant() {
        let p = Policy::new(
            &["root".into()],
            &["stager".into()],
            &[
                rule(&["ci"], &["team/*"], &["pull", "push"]),
                rule(&["*"], &["public/**"], &["pull"]),
                rule(&["anonymous"], &["open/*"], &["pull"]),
                rule(&["ops"], &["apps/*"], &["pull", "delete"]),
            ],
        )
        .unwrap();
        let ci = Principal::User("ci".into());
        assert_eq!(p.actions(&ci, "team/web"), Actions::PULL | Actions::PUSH);
        assert_eq!(p.actions(&ci, "public/a/b"), Actions::PULL);
        assert_eq!(p.actions(&ci, "open/x"), Actions::NONE, "anonymous rules are for callers without login");
        assert_eq!(p.actions(&ci, "other/x"), Actions::NONE);
        assert_eq!(p.actions(&Principal::Anonymous, "open/x"), Actions::PULL);
        assert_eq!(p.actions(&Principal::Anonymous, "public/x"), Actions::NONE);
        assert_eq!(p.actions(&Principal::User("ops".into()), "apps/shop"), Actions::PULL | Actions::DELETE);
        assert_eq!(p.actions(&Principal::User("root".into()), "apps/shop"), Actions::ALL);
        assert_eq!(p.role(&Principal::User("root".into())), Role::Admin);
        assert_eq!(p.role(&Principal::User("stager".into())), Role::Stager);
        assert_eq!(p.role(&ci), Role::None);
        assert!(p.catalog(&Principal::User("root".into())) && !p.catalog(&ci));
        let app =
            Principal::App { app: oci::AppId::parse("shop").unwrap(), credential: store::CredentialId::parse("0123456789abcdef").unwrap() };
        assert_eq!(p.actions(&app, "apps/shop"), Actions::PULL);
        assert_eq!(p.actions(&app, "apps/shop2"), Actions::NONE);
        assert_eq!(p.actions(&app, "public/x"), Actions::NONE, "pull credentials open their app only");
        assert_eq!(p.role(&app), Role::None);
    }

    #[test]
    fn bad_rules_are_named() {
        let e = Policy::new(&[], &[], &[rule(&["a"], &["x"], &["pull"]), rule(&["a"], &["x"], &["write"])]).unwrap_err();
        assert!(e.to_string().contains("rule 2") && e.to_string().contains("write"), "{e}");
        assert!(Policy::new(&[], &[], &[rule(&[], &["x"], &["pull"])]).is_err());
    }

    proptest! {
        #[test]
        fn literal_globs_match_only_themselves(a in "[a-z]{1,6}(/[a-z]{1,6}){0,2}", b in "[a-z]{1,6}(/[a-z]{1,6}){0,2}") {
            let g = Glob::new(&a).unwrap();
            prop_assert_eq!(g.matches(&b), a == b);
        }

        #[test]
        fn double_star_matches_any_non_app(name in "[a-z]{1,6}(/[a-z]{1,6}){0,3}") {
            prop_assert_eq!(Glob::new("**").unwrap().matches(&name), !name.starts_with("apps/"));
        }
    }
}
