//! The dataflow check over a workflow's task graph: a variable `v.x` read where no path from
//! the start task assigns it is an error (a "may be assigned" analysis, so a read that is
//! assigned on at least one path passes).

use std::collections::{BTreeSet, HashMap, VecDeque};

use jcl::Task;
use jcl_syntax::ast::Span;

/// What a task does to the job's variables, in execution order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Reads `v.<var>` at `span`.
    Read { var: String, span: Span },
    /// Assigns `v.<var>`.
    Gen(String),
    /// Assigns every variable (`<*>` into `v.`).
    GenAll,
}

/// The analysis facts of one task, parallel to the model's tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    pub ops: Vec<Op>,
    /// The task's `next` is never taken (`raise_error` always raises).
    pub dead_next: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct VarSet {
    all: bool,
    vars: BTreeSet<String>,
}

impl VarSet {
    fn contains(&self, var: &str) -> bool {
        self.all || self.vars.contains(var)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Read { .. } => {}
            Op::Gen(v) => {
                self.vars.insert(v.clone());
            }
            Op::GenAll => self.all = true,
        }
    }

    /// Adds `other`; whether anything changed.
    fn merge(&mut self, other: &VarSet) -> bool {
        let mut changed = false;
        if other.all && !self.all {
            self.all = true;
            changed = true;
        }
        for v in &other.vars {
            changed |= self.vars.insert(v.clone());
        }
        changed
    }
}

/// The reads of variables that no path from the first task assigns before them, in task
/// order. Tasks that cannot be reached from the first task are not checked.
pub fn unassigned_reads(tasks: &[Task], infos: &[Info]) -> Vec<(String, Span)> {
    let index: HashMap<u32, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut state: Vec<Option<VarSet>> = vec![None; tasks.len()];
    let mut work = VecDeque::new();
    if !tasks.is_empty() {
        state[0] = Some(VarSet::default());
        work.push_back(0usize);
    }
    while let Some(i) = work.pop_front() {
        let Some(mut s) = state.get(i).cloned().flatten() else {
            continue;
        };
        if let Some(info) = infos.get(i) {
            for op in &info.ops {
                s.apply(op);
            }
        }
        let Some(task) = tasks.get(i) else { continue };
        let dead_next = infos.get(i).is_some_and(|f| f.dead_next);
        let succs = task
            .next
            .iter()
            .filter(|_| !dead_next)
            .chain(task.edges.iter().map(|e| &e.to))
            .chain(task.on_error.iter());
        for to in succs {
            let Some(&j) = index.get(to) else { continue };
            let changed = match &mut state[j] {
                Some(old) => old.merge(&s),
                slot @ None => {
                    *slot = Some(s.clone());
                    true
                }
            };
            if changed {
                work.push_back(j);
            }
        }
    }
    let mut out = vec![];
    for (i, st) in state.into_iter().enumerate() {
        let Some(mut s) = st else { continue };
        let Some(info) = infos.get(i) else { continue };
        for op in &info.ops {
            if let Op::Read { var, span } = op {
                // one place read by several tasks (an interface call's copies) is one report
                if !s.contains(var) && !out.iter().any(|(v, sp)| v == var && sp == span) {
                    out.push((var.clone(), *span));
                }
            }
            s.apply(op);
        }
    }
    out
}

/// Whether the task with id `to` can be reached from the first task.
pub fn reachable(tasks: &[Task], infos: &[Info], to: u32) -> bool {
    let index: HashMap<u32, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut seen = vec![false; tasks.len()];
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        let Some(task) = tasks.get(i) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if task.id == to {
            return true;
        }
        let dead_next = infos.get(i).is_some_and(|f| f.dead_next);
        let succs = task
            .next
            .iter()
            .filter(|_| !dead_next)
            .chain(task.edges.iter().map(|e| &e.to))
            .chain(task.on_error.iter());
        work.extend(succs.filter_map(|s| index.get(s).copied()));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use jcl::{Callee, Edge, SystemAction, TaskAttributes};

    fn task(id: u32, next: Option<u32>, edges: Vec<(&str, u32)>) -> Task {
        Task {
            id,
            callee: Callee::System(SystemAction::NoOp),
            next,
            on_error: None,
            edges: edges
                .into_iter()
                .map(|(w, to)| Edge { when: w.into(), to })
                .collect(),
            attributes: TaskAttributes::default(),
        }
    }

    fn read(v: &str, line: u32) -> Op {
        Op::Read {
            var: v.into(),
            span: Span {
                line,
                ..Span::default()
            },
        }
    }

    #[test]
    fn a_loop_assigns_before_the_second_read() {
        // 0 -> 1 (branch reads x, true -> 2) ; 2 assigns x -> 1 ; 1 -> 3
        let tasks = vec![
            task(0, Some(1), vec![]),
            task(1, Some(3), vec![("true", 2)]),
            task(2, Some(1), vec![]),
            task(3, None, vec![]),
        ];
        let infos = vec![
            Info::default(),
            Info {
                ops: vec![read("x", 1)],
                dead_next: false,
            },
            Info {
                ops: vec![Op::Gen("x".into())],
                dead_next: false,
            },
            Info {
                ops: vec![read("y", 3)],
                dead_next: false,
            },
        ];
        let bad = unassigned_reads(&tasks, &infos);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "y");
    }

    #[test]
    fn a_dead_next_carries_nothing() {
        let tasks = vec![
            task(0, Some(1), vec![]),
            task(1, Some(2), vec![]),
            task(2, None, vec![]),
        ];
        let infos = vec![
            Info::default(),
            Info {
                ops: vec![Op::Gen("x".into())],
                dead_next: true,
            },
            Info {
                ops: vec![read("x", 2)],
                dead_next: false,
            },
        ];
        // task 2 is unreachable: nothing reported
        assert!(unassigned_reads(&tasks, &infos).is_empty());
    }
}
