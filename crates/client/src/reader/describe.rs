//! A change in words, as `rdv read` shows it: `add @bob:a.example writer`.

use super::apply::member_name;
use rendezvous_protocol::topic::{Action, History, MemberIndex, MemberSpec, TopicState};

/// What `action` did, with members named by user id.
pub(super) fn describe(action: &Action, before: Option<&TopicState>, after: &TopicState) -> String {
    let name = |m: &MemberIndex| member_name(before, after, *m);
    let spec = |s: &MemberSpec| {
        let role = s.role.name();
        format!("{} {role}", s.user)
    };
    let list = |names: Vec<String>| names.join(", ");
    match action {
        Action::Create {
            history, members, ..
        } => format!(
            "create ({} history): {}",
            match history {
                History::Shared => "shared",
                History::Protected => "protected",
            },
            list(members.iter().map(spec).collect())
        ),
        Action::Add(specs) => format!("add {}", list(specs.iter().map(spec).collect())),
        Action::Remove(ms) => format!("remove {}", list(ms.iter().map(name).collect())),
        Action::SetRole(m, role) => format!("set role of {} to {}", name(m), role.name()),
        Action::Rekey => "rekey".into(),
        Action::Move(s) => format!("move {} to a new identity key", s.user),
    }
}
