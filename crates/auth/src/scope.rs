//! Token scopes as the Docker token spec writes them: `repository:<name>:<actions>` in
//! requests, `{"type", "name", "actions"}` in a token's `access` claim.

use serde::{Deserialize, Serialize};

use crate::Actions;

/// One entry of a token's `access` claim, or one requested scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn repository(name: &str, actions: Actions) -> Grant {
        Grant { kind: "repository".into(), name: name.to_string(), actions: actions.names().iter().map(|s| s.to_string()).collect() }
    }

    /// `registry:catalog:*`: listing every repository.
    pub fn catalog() -> Grant {
        Grant { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }
    }

    pub fn is_catalog(&self) -> bool {
        self.kind == "registry" && self.name == "catalog" && self.actions.iter().any(|a| a == "*")
    }

    /// The repository actions this entry holds (none for other kinds).
    pub fn actions(&self) -> Actions {
        if self.kind != "repository" {
            return Actions::NONE;
        }
        self.actions.iter().filter_map(|a| Actions::parse_one(a)).fold(Actions::NONE, |acc, a| acc | a)
    }

    /// Parses one requested scope; the name is what lies between the first and the last
    /// `:` (a name may hold a `host:port`). `None` for anything malformed: a scope we cannot
    /// read is simply not granted.
    pub fn parse(scope: &str) -> Option<Grant> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // `repository(plugin)` and similar class suffixes are from old clients; the type is
        // what precedes them.
        let kind = kind.split('(').next().unwrap_or(kind);
        if name.is_empty() || kind.is_empty() {
            return None;
        }
        let actions = actions.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        Some(Grant { kind: kind.to_string(), name: name.to_string(), actions })
    }

    /// Parses every scope of a request: repeated `scope` parameters, each possibly holding
    /// several space-separated scopes.
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<Grant> {
        params.into_iter().flat_map(|p| p.split(' ')).filter_map(Grant::parse).collect()
    }
}

/// What a challenge asks for: `repository:<name>:<actions>`.
pub fn challenge_scope(repo: &str, actions: Actions) -> String {
    format!("repository:{repo}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        let g = Grant::parse("repository:team/web:pull,push").unwrap();
        assert_eq!(g.name, "team/web");
        assert_eq!(g.actions(), Actions::PULL | Actions::PUSH);
        let g = Grant::parse("repository:localhost:5000/a:pull").unwrap();
        assert_eq!(g.name, "localhost:5000/a");
        assert!(Grant::parse("registry:catalog:*").unwrap().is_catalog());
        assert_eq!(Grant::parse("repository(plugin):x:pull").unwrap().kind, "repository");
        assert!(Grant::parse("nonsense").is_none() && Grant::parse("repository::pull").is_none());
        let all = Grant::parse_all(["repository:a:pull repository:b:push", "repository:c:pull"]);
        assert_eq!(all.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(challenge_scope("a/b", Actions::PULL | Actions::PUSH), "repository:a/b:pull,push");
    }
}
