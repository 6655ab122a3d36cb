//! Retained sizes, as twiggy computes them: a node's retained size is its own size plus that of
//! every node it dominates, i.e. every node no root reaches without passing through it. A
//! virtual root points at all real roots so the graph has the single entry dominators need.

use petgraph::Direction;
use petgraph::algo::dominators::simple_fast;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;

pub struct DominatorTree {
    graph: DiGraph<(), ()>,
    sizes: Vec<u64>,
    /// Whether a root reaches each node; the virtual root last.
    reachable: Vec<bool>,
    /// The bytes of nodes no root reaches.
    unreached_size: u64,
    /// Immediate dominator of each node; `None` when it is the virtual root.
    pub idom: Vec<Option<usize>>,
    pub retained: Vec<u64>,
}

impl DominatorTree {
    /// `n` nodes with `sizes`, the `roots` among them and the `edges` between them. Nodes no
    /// root reaches dominate nothing and retain only themselves.
    pub fn new(n: usize, roots: &[usize], edges: &[(usize, usize)], sizes: &[u64]) -> Self {
        let mut graph = DiGraph::<(), ()>::with_capacity(n + 1, edges.len() + roots.len());
        for _ in 0..n {
            graph.add_node(());
        }
        let virtual_root = graph.add_node(());
        for &r in roots {
            graph.add_edge(virtual_root, NodeIndex::new(r), ());
        }
        for &(a, b) in edges {
            graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
        let dominators = simple_fast(&graph, virtual_root);
        let idom: Vec<Option<usize>> = (0..n)
            .map(|i| {
                dominators
                    .immediate_dominator(NodeIndex::new(i))
                    .filter(|&d| d != virtual_root)
                    .map(NodeIndex::index)
            })
            .collect();

        // Children before parents: a post-order of the dominator tree, iteratively.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut tops = Vec::new();
        for (i, d) in idom.iter().enumerate() {
            match d {
                Some(d) => children[*d].push(i),
                None => tops.push(i),
            }
        }
        let mut retained = sizes.to_vec();
        let mut stack: Vec<(usize, bool)> = tops.into_iter().map(|t| (t, false)).collect();
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                if let Some(parent) = idom[node] {
                    retained[parent] += retained[node];
                }
            } else {
                stack.push((node, true));
                stack.extend(children[node].iter().map(|&c| (c, false)));
            }
        }
        let mut reachable = vec![false; n + 1];
        let mut dfs = Dfs::new(&graph, virtual_root);
        while let Some(node) = dfs.next(&graph) {
            reachable[node.index()] = true;
        }
        let unreached_size = (0..n).filter(|&i| !reachable[i]).map(|i| sizes[i]).sum();
        DominatorTree {
            graph,
            sizes: sizes.to_vec(),
            reachable,
            unreached_size,
            idom,
            retained,
        }
    }

    /// What a set of nodes retains together: the nodes themselves and every node the roots
    /// reach only through one of them. A node shared by two members counts here, though
    /// neither member dominates it alone. Nodes no root reaches count for every set.
    ///
    /// Only what the members reach can go with them: a node outside that reach has no path
    /// from a root through a member, so it stays if any root reaches it. The search is
    /// confined to the members' reach, which for most groups (a crate deep in the graph) is a
    /// small part of it, rather than walking the whole graph once per group.
    pub fn retained_by_set(&self, members: &[usize]) -> u64 {
        let n = self.sizes.len();
        let mut member = vec![false; n];
        for &m in members {
            member[m] = true;
        }
        // The members' reach, members included; n + 1 entries, as the virtual root is looked
        // up among the referrers below.
        let mut in_reach = vec![false; n + 1];
        let mut reach: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = members.to_vec();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut in_reach[node], true) {
                continue;
            }
            reach.push(node);
            stack.extend(
                self.graph
                    .neighbors(NodeIndex::new(node))
                    .map(NodeIndex::index),
            );
        }
        // What stays without the members: nodes of the reach that a reachable node outside
        // it refers to (the virtual root among them), and what they reach in turn.
        let mut stays = vec![false; n];
        let mut stack: Vec<usize> = reach
            .iter()
            .copied()
            .filter(|&v| {
                !member[v]
                    && self
                        .graph
                        .neighbors_directed(NodeIndex::new(v), Direction::Incoming)
                        .any(|p| !in_reach[p.index()] && self.reachable[p.index()])
            })
            .collect();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut stays[node], true) {
                continue;
            }
            stack.extend(
                self.graph
                    .neighbors(NodeIndex::new(node))
                    .map(NodeIndex::index)
                    .filter(|&next| in_reach[next] && !member[next] && !stays[next]),
            );
        }
        let gone_in_reach: u64 = reach
            .iter()
            .filter(|&&v| !stays[v])
            .map(|&v| self.sizes[v])
            .sum();
        // Unreached nodes of the reach are in `gone_in_reach` already.
        let unreached_in_reach: u64 = reach
            .iter()
            .filter(|&&v| !self.reachable[v])
            .map(|&v| self.sizes[v])
            .sum();
        gone_in_reach + self.unreached_size - unreached_in_reach
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// main→a→c, main→b→c, b→d.
    #[test]
    fn diamond_with_a_tail() {
        let (main, a, b, c, d) = (0, 1, 2, 3, 4);
        let sizes = [100, 10, 20, 40, 80];
        let tree = DominatorTree::new(
            5,
            &[main],
            &[(main, a), (main, b), (a, c), (b, c), (b, d)],
            &sizes,
        );
        assert_eq!(
            tree.idom,
            [None, Some(main), Some(main), Some(main), Some(b)]
        );
        assert_eq!(tree.retained, [250, 10, 100, 40, 80]);
        assert_eq!(tree.retained_by_set(&[a, b]), 10 + 20 + 40 + 80);
        assert_eq!(tree.retained_by_set(&[a]), 10);
    }

    #[test]
    fn a_node_two_roots_reach_belongs_to_neither() {
        let tree = DominatorTree::new(3, &[0, 1], &[(0, 2), (1, 2)], &[1, 2, 4]);
        assert_eq!(tree.idom, [None, None, None]);
        assert_eq!(tree.retained, [1, 2, 4]);
        assert_eq!(tree.retained_by_set(&[0, 1]), 7);
    }

    /// What `retained_by_set` answers, by definition: the bytes no root reaches once the
    /// members are gone.
    fn retained_by_removal(
        n: usize,
        roots: &[usize],
        edges: &[(usize, usize)],
        sizes: &[u64],
        members: &[usize],
    ) -> u64 {
        let mut reached = vec![false; n];
        let mut stack: Vec<usize> = roots
            .iter()
            .copied()
            .filter(|r| !members.contains(r))
            .collect();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut reached[node], true) {
                continue;
            }
            stack.extend(
                edges
                    .iter()
                    .filter(|&&(a, b)| a == node && !members.contains(&b))
                    .map(|&(_, b)| b),
            );
        }
        (0..n).filter(|&i| !reached[i]).map(|i| sizes[i]).sum()
    }

    #[test]
    fn sets_retain_what_their_removal_leaves_unreached() {
        // xorshift: random graphs, the same on every run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for _ in 0..500 {
            let n = 1 + next(24);
            let roots: Vec<usize> = (0..1 + next(3)).map(|_| next(n)).collect();
            let edges: Vec<(usize, usize)> = (0..next(3 * n)).map(|_| (next(n), next(n))).collect();
            let sizes: Vec<u64> = (0..n).map(|i| 1 << (i % 40)).collect();
            let tree = DominatorTree::new(n, &roots, &edges, &sizes);
            let members: Vec<usize> = (0..next(4)).map(|_| next(n)).collect();
            assert_eq!(
                tree.retained_by_set(&members),
                retained_by_removal(n, &roots, &edges, &sizes, &members),
                "{n} nodes, roots {roots:?}, edges {edges:?}, members {members:?}"
            );
        }
    }

    #[test]
    fn cycles_are_dominated_by_their_entry() {
        let tree = DominatorTree::new(3, &[0], &[(0, 1), (1, 2), (2, 1)], &[1, 2, 4]);
        assert_eq!(tree.idom, [None, Some(0), Some(1)]);
        assert_eq!(tree.retained, [7, 6, 4]);
    }
}
