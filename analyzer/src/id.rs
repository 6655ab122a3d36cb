//! Typed index spaces: an id indexes only the tables of its own kind, so an object's id
//! cannot index a symbol table and no table needs `as usize` arithmetic at its call sites.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// An id that is a position in the tables of its kind.
pub trait Idx: Copy {
    fn from_index(index: usize) -> Self;
    fn index(self) -> usize;
}

/// Implements [`Idx`] for `u32` newtypes.
macro_rules! u32_idx {
    ($($ty:ty),* $(,)?) => {$(
        impl $crate::id::Idx for $ty {
            fn from_index(index: usize) -> Self {
                Self(u32::try_from(index).expect("fewer than 2^32 ids of one kind"))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}
pub(crate) use u32_idx;

/// A table indexed by `I`.
#[derive(Clone, PartialEq, Eq)]
pub struct IdVec<I, T> {
    items: Vec<T>,
    id: PhantomData<fn(I) -> I>,
}

impl<I: Idx, T> IdVec<I, T> {
    pub fn new() -> Self {
        Self::from_vec(Vec::new())
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self::from_vec(Vec::with_capacity(capacity))
    }

    /// `len` copies of `value`.
    pub fn filled(value: T, len: usize) -> Self
    where
        T: Clone,
    {
        Self::from_vec(vec![value; len])
    }

    fn from_vec(items: Vec<T>) -> Self {
        IdVec {
            items,
            id: PhantomData,
        }
    }

    /// Appends `value` and returns its id.
    pub fn push(&mut self, value: T) -> I {
        self.items.push(value);
        I::from_index(self.items.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, id: I) -> Option<&T> {
        self.items.get(id.index())
    }

    /// The values in id order, for what takes slices (parallel iteration).
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.items.iter_mut()
    }

    /// Every id in order, with its value.
    pub fn iter_ids(&self) -> impl Iterator<Item = (I, &T)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, value)| (I::from_index(i), value))
    }

    pub fn ids(&self) -> impl Iterator<Item = I> + use<I, T> {
        (0..self.items.len()).map(I::from_index)
    }

    /// Grows the table to `len` entries, filling with `value`.
    pub fn resize(&mut self, len: usize, value: T)
    where
        T: Clone,
    {
        self.items.resize(len, value);
    }
}

impl<I: Idx, T> Default for IdVec<I, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Idx, T> Index<I> for IdVec<I, T> {
    type Output = T;
    fn index(&self, id: I) -> &T {
        &self.items[id.index()]
    }
}

impl<I: Idx, T> IndexMut<I> for IdVec<I, T> {
    fn index_mut(&mut self, id: I) -> &mut T {
        &mut self.items[id.index()]
    }
}

impl<I: Idx, T> From<Vec<T>> for IdVec<I, T> {
    /// The values in id order.
    fn from(items: Vec<T>) -> Self {
        Self::from_vec(items)
    }
}

impl<I: Idx, T> FromIterator<T> for IdVec<I, T> {
    fn from_iter<It: IntoIterator<Item = T>>(iter: It) -> Self {
        Self::from_vec(iter.into_iter().collect())
    }
}

impl<'v, I: Idx, T> IntoIterator for &'v IdVec<I, T> {
    type Item = &'v T;
    type IntoIter = std::slice::Iter<'v, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<I, T: fmt::Debug> fmt::Debug for IdVec<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Apple(u32);
    u32_idx!(Apple);

    #[test]
    fn ids_index_their_own_table() {
        let mut apples: IdVec<Apple, &str> = IdVec::new();
        let first = apples.push("first");
        let second = apples.push("second");
        assert_eq!((first, second), (Apple(0), Apple(1)));
        assert_eq!(apples[second], "second");
        apples[first] = "changed";
        assert_eq!(
            apples.iter_ids().collect::<Vec<_>>(),
            [(Apple(0), &"changed"), (Apple(1), &"second")]
        );
        assert_eq!(apples.get(Apple(2)), None);
        let mut flags: IdVec<Apple, bool> = IdVec::filled(false, 1);
        flags.resize(3, true);
        assert_eq!(flags.ids().filter(|&a| flags[a]).count(), 2);
    }
}
