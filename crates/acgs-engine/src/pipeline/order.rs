//! The order steps run in: level by level (each level in file order), a step after every step
//! it needs — Kahn's algorithm, linear in steps and references.

use std::collections::BTreeMap;

use super::Step;

/// `steps` in dependency order; steps left on a cycle come last, with the line and ids of one
/// cycle among them (ending where it began).
pub(crate) fn levels(steps: Vec<Step>) -> (Vec<Step>, Option<(u32, Vec<String>)>) {
    let position: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut waiting_on = vec![0usize; steps.len()];
    let mut dependents = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for dep in step.deps.iter().filter_map(|d| position.get(d.as_str())) {
            waiting_on[i] += 1;
            dependents[*dep].push(i);
        }
    }
    let mut level: Vec<usize> = (0..steps.len()).filter(|i| waiting_on[*i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while !level.is_empty() {
        let mut next = Vec::new();
        for &i in &level {
            for &d in &dependents[i] {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 {
                    next.push(d);
                }
            }
        }
        next.sort_unstable();
        order.append(&mut level);
        level = next;
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let mut ordered: Vec<Step> = order.iter().filter_map(|i| slots[*i].take()).collect();
    let waiting: Vec<Step> = slots.into_iter().flatten().collect();
    if waiting.is_empty() {
        return (ordered, None);
    }
    let cycle = find_cycle(&waiting);
    let at = waiting
        .iter()
        .find(|s| cycle.first() == Some(&s.id))
        .map_or(0, |s| s.line);
    ordered.extend(waiting);
    (ordered, Some((at, cycle)))
}

/// A cycle among `steps` (each waits for another of them), as step ids ending where it began.
fn find_cycle(steps: &[Step]) -> Vec<String> {
    let waiting: BTreeMap<&str, &Step> = steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let Some(mut at) = steps.first().map(|s| s.id.as_str()) else {
        return Vec::new();
    };
    let mut path: Vec<&str> = Vec::new();
    while !path.contains(&at) {
        path.push(at);
        let Some(next) = waiting[at]
            .deps
            .iter()
            .find(|d| waiting.contains_key(d.as_str()))
        else {
            break;
        };
        at = next.as_str();
    }
    let start = path.iter().position(|p| *p == at).unwrap_or(0);
    let mut cycle: Vec<String> = path[start..].iter().map(|s| (*s).to_owned()).collect();
    cycle.push(at.to_owned());
    cycle
}
