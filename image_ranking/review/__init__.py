"""The curators' review dashboard: views, forms, selectors, labels and calibration."""
