//! A simulated rate-limited, faulty upstream (work in progress).
