"""Training: the loop every SR recipe plugs into (`loop`), its data (`data`), the recipes
(`recipes`), and the SFD-IQA discriminator training (`sfd_iqa`)."""
