//! What the compiler knows about callables: the interface (kind, inputs, outputs) of every
//! action, procedure and workflow a file may call, taken from the same compile first and from
//! the database (the newest version of the name) otherwise, plus the type names the database
//! knows.

use std::collections::{BTreeSet, HashMap};

use jcl::{ActionKind, Destination, Param, SystemAction};

/// The interface of a callable.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub kind: ActionKind,
    pub inputs: Vec<Param>,
    pub outputs: Vec<Param>,
    /// The version in the database (`None` for a file of this compile).
    pub version: Option<i32>,
}

impl Interface {
    /// The inputs a call passes as arguments (not those taken from the environment).
    pub fn arguments(&self) -> impl Iterator<Item = &Param> {
        self.inputs
            .iter()
            .filter(|p| p.destination == Destination::Arguments)
    }

    /// The argument input called `name`.
    pub fn argument(&self, name: &str) -> Option<&Param> {
        self.arguments().find(|p| p.name == name)
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&Param> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

/// What the database contributes to a compile: the interfaces of callees that are not in the
/// compile, and the registered type names. Without a database ([`Catalog::offline`]) no
/// external callee is known and the types are the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Interfaces by name (the newest version of each name).
    pub externals: HashMap<String, Interface>,
    /// The type names of `jobcenter.json_schemas`; `None` when unknown (no database).
    pub types: Option<BTreeSet<String>>,
}

impl Catalog {
    /// A catalog for a compile without a database: the built-in types of the extension.
    pub fn offline() -> Catalog {
        Catalog {
            externals: HashMap::new(),
            types: Some(BUILTIN_TYPES.iter().map(|t| (*t).to_owned()).collect()),
        }
    }

    /// Whether `ty` is a known type name.
    pub fn type_known(&self, ty: &str) -> bool {
        match &self.types {
            Some(types) => types.contains(ty),
            None => true,
        }
    }
}

/// The types every jobcenter database has (`jobcenter.json_schemas` as installed).
pub const BUILTIN_TYPES: [&str; 10] = [
    "null", "boolean", "number", "string", "array", "object", "integer", "json", "event", "error",
];

fn param(name: &str, ty: &str, optional: bool) -> Param {
    Param {
        name: name.to_owned(),
        ty: ty.to_owned(),
        optional,
        default: None,
        destination: Destination::Arguments,
    }
}

/// The inputs and outputs of the system actions that take an imap, as declared in the
/// extension's schema (`action_inputs` rows with negative ids).
pub fn system_interface(action: SystemAction) -> Interface {
    let (inputs, outputs) = match action {
        SystemAction::Subscribe => (
            vec![
                param("name", "string", false),
                param("mask", "object", false),
            ],
            vec![],
        ),
        SystemAction::Unsubscribe => (vec![param("name", "string", false)], vec![]),
        SystemAction::WaitForEvent => (
            vec![
                param("events", "json", false),
                param("timeout", "json", true),
            ],
            vec![param("event", "event", false)],
        ),
        SystemAction::RaiseError => (vec![param("msg", "string", false)], vec![]),
        SystemAction::RaiseEvent => (vec![param("event", "object", false)], vec![]),
        SystemAction::Lock => (
            vec![
                param("type", "string", false),
                param("value", "json", false),
                param("wait", "json", true),
            ],
            vec![],
        ),
        SystemAction::Unlock => (
            vec![
                param("type", "string", false),
                param("value", "json", false),
            ],
            vec![],
        ),
        SystemAction::Sleep => (vec![param("timeout", "json", false)], vec![]),
        _ => (vec![], vec![]),
    };
    Interface {
        name: action.name().to_owned(),
        kind: ActionKind::System,
        inputs,
        outputs,
        version: None,
    }
}
