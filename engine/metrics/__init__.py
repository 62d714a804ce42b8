"""Sample-quality metrics, computed offline: Fréchet distance, KID, precision/recall, Inception
Score, over features of either the standard FID Inception network (when its weight file is on
disk) or a small domain network GenLab trains on the dataset itself (labelled "-domain")."""
