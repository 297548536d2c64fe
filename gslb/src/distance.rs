//! Great-circle distance between two points on the globe, to order edges by how far they are
//! from a client's region.

/// Mean Earth radius in kilometres (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on the globe, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coordinates {
    /// Latitude, −90 (south) to 90 (north).
    pub latitude: f64,
    /// Longitude, −180 (west) to 180 (east).
    pub longitude: f64,
}

impl Coordinates {
    /// Great-circle distance to `other` in kilometres (haversine formula: accurate to about
    /// 0.5% on a sphere, plenty to rank edges).
    pub fn distance_km(&self, other: &Coordinates) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        // Clamped: rounding can push `a` a hair above 1 for antipodes.
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(latitude: f64, longitude: f64) -> Coordinates {
        Coordinates {
            latitude,
            longitude,
        }
    }

    #[test]
    fn known_distances() {
        let paris = at(48.8566, 2.3522);
        let london = at(51.5074, -0.1278);
        let new_york = at(40.7128, -74.0060);
        let d = paris.distance_km(&london);
        assert!((d - 344.0).abs() < 5.0, "{d}");
        let d = london.distance_km(&new_york);
        assert!((d - 5570.0).abs() < 20.0, "{d}");
        assert_eq!(paris.distance_km(&paris), 0.0);
        let d = at(0.0, 0.0).distance_km(&at(0.0, 180.0));
        assert!(
            (d - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6,
            "{d}"
        );
    }

    proptest! {
        #[test]
        fn symmetric_bounded_and_triangular(
            a in (-90.0f64..=90.0, -180.0f64..=180.0),
            b in (-90.0f64..=90.0, -180.0f64..=180.0),
            c in (-90.0f64..=90.0, -180.0f64..=180.0),
        ) {
            let (a, b, c) = (at(a.0, a.1), at(b.0, b.1), at(c.0, c.1));
            let ab = a.distance_km(&b);
            prop_assert!((ab - b.distance_km(&a)).abs() < 1e-6);
            prop_assert!((0.0..=std::f64::consts::PI * EARTH_RADIUS_KM + 1e-6).contains(&ab));
            prop_assert!(ab <= a.distance_km(&c) + c.distance_km(&b) + 1e-6);
        }
    }
}
