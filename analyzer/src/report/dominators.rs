//! Retained sizes, as twiggy computes them: a node's retained size is its own size plus that of
//! every node it dominates, i.e. every node no root reaches without passing through it. A
//! virtual root points at all real roots so the graph has the single entry dominators need.

use petgraph::algo::dominators::simple_fast;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeFiltered, EdgeRef};

pub struct DominatorTree {
    graph: DiGraph<(), ()>,
    virtual_root: NodeIndex,
    sizes: Vec<u64>,
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
        DominatorTree {
            graph,
            virtual_root,
            sizes: sizes.to_vec(),
            idom,
            retained,
        }
    }

    /// What a set of nodes retains together: the nodes themselves and every node the roots
    /// reach only through one of them. A node shared by two members counts here, though
    /// neither member dominates it alone.
    pub fn retained_by_set(&self, members: &[usize]) -> u64 {
        let n = self.sizes.len();
        let mut removed = vec![false; n + 1];
        for &m in members {
            removed[m] = true;
        }
        let filtered = EdgeFiltered::from_fn(&self.graph, |e| !removed[e.target().index()]);
        let mut reached = vec![false; n + 1];
        let mut dfs = Dfs::new(&filtered, self.virtual_root);
        while let Some(node) = dfs.next(&filtered) {
            reached[node.index()] = true;
        }
        (0..n).filter(|&i| !reached[i]).map(|i| self.sizes[i]).sum()
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

    #[test]
    fn cycles_are_dominated_by_their_entry() {
        let tree = DominatorTree::new(3, &[0], &[(0, 1), (1, 2), (2, 1)], &[1, 2, 4]);
        assert_eq!(tree.idom, [None, Some(0), Some(1)]);
        assert_eq!(tree.retained, [7, 6, 4]);
    }
}
