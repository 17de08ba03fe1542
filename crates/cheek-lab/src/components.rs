//! Connected components of a pixel selection: the faces of a mask, and the eye blobs of a face.

use std::collections::VecDeque;

/// Connected components (8-neighbour) of `keep`; returns the label image (0 = none) and each
/// component's pixels, largest first (labels renumbered in that order).
pub fn components(keep: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut label = vec![0u32; w * h];
    let mut comps: Vec<Vec<u32>> = Vec::new();
    for start in 0..w * h {
        if keep[start] && label[start] == 0 {
            let id = comps.len() as u32 + 1;
            comps.push(flood(keep, w, h, start, id, &mut label));
        }
    }
    largest_first(label, comps)
}

/// Labels `id` on every unlabelled kept pixel 8-connected to `start`; returns them, `start`
/// first, in the order they were reached (breadth first).
fn flood(keep: &[bool], w: usize, h: usize, start: usize, id: u32, label: &mut [u32]) -> Vec<u32> {
    let mut px = vec![start as u32];
    let mut queue = VecDeque::from([start]);
    label[start] = id;
    while let Some(i) = queue.pop_front() {
        let (x, y) = ((i % w) as i64, (i / w) as i64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if keep[j] && label[j] == 0 {
                    label[j] = id;
                    px.push(j as u32);
                    queue.push_back(j);
                }
            }
        }
    }
    px
}

/// Renumbers the components by size, largest first (a stable sort: ties keep scan order).
fn largest_first(mut label: Vec<u32>, comps: Vec<Vec<u32>>) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut order: Vec<usize> = (0..comps.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(comps[k].len()));
    let mut renumber = vec![0u32; comps.len() + 1];
    for (new, &old) in order.iter().enumerate() {
        renumber[old + 1] = new as u32 + 1;
    }
    for l in &mut label {
        *l = renumber[*l as usize];
    }
    let mut sorted: Vec<Vec<u32>> = Vec::with_capacity(comps.len());
    let mut comps: Vec<Option<Vec<u32>>> = comps.into_iter().map(Some).collect();
    for &k in &order {
        sorted.push(comps[k].take().expect("each once"));
    }
    (label, sorted)
}
