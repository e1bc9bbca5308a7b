-- An instalment the bank returned after it was allotted (issue 16): the execution run that
-- reads the return records it again as `reversed`, with the allotment's amount and units.
ALTER TABLE investments DROP CONSTRAINT investments_status_check;
ALTER TABLE investments ADD CONSTRAINT investments_status_check
    CHECK (status IN ('executed', 'pending', 'failed', 'reversed'));
